"""Replicated sessions across hosts: real uvicorn nodes, the seed's settings, a test secret."""

from __future__ import annotations

import signal
import threading

import pytest

from ..support.polling import wait_for
from .network import Network
from .web_nodes import WebNode, cookie_of

pytestmark = pytest.mark.hosts


def start_cluster(network: Network, count: int = 3, **env: str) -> list[WebNode]:
    nodes = [WebNode(network, host, **env) for host in network.hosts[:count]]
    for node in nodes:
        node.start()
    return nodes


def reads(node: WebNode, cookie: str) -> dict[str, object]:
    data: dict[str, object] = node.request("GET", "/", cookie).json()
    return data


def test_async_write_is_seen_everywhere(network: Network) -> None:
    node1, node2, node3 = start_cluster(network)
    cookie = cookie_of(node1.request("POST", "/update", json={"user": "alice"}))
    assert cookie.endswith(".node1")
    assert wait_for(lambda: reads(node2, cookie) == {"user": "alice"}, 5)
    assert wait_for(lambda: reads(node3, cookie) == {"user": "alice"}, 5)


def test_sync_write_is_seen_at_once(network: Network) -> None:
    node1, node2, node3 = start_cluster(network, CLUSTERSESSION_CHANNEL_SEND_OPTIONS="6")
    cookie = cookie_of(node1.request("POST", "/update", json={"n": 0}))
    for i in range(1, 20):
        node1.request("POST", "/update", cookie, json={"n": i})
        assert reads(node2, cookie) == {"n": i}
        assert reads(node3, cookie) == {"n": i}


def test_failover_after_sigkill_keeps_the_session_and_reroutes(network: Network) -> None:
    node1, node2, node3 = start_cluster(network, CLUSTERSESSION_CHANNEL_SEND_OPTIONS="6")
    cookie = cookie_of(node1.request("POST", "/update", json={"cart": ["apple", "pear"]}))
    token = cookie.split(".")[0]
    node1.kill(signal.SIGKILL)
    # node2 must first notice node1 is gone (its connection drops at once).
    response = node2.request("GET", "/", cookie)
    assert response.json() == {"cart": ["apple", "pear"]}
    assert wait_for(lambda: "set-cookie" in node2.request("GET", "/", cookie).headers, 5)
    new_cookie = cookie_of(node2.request("GET", "/", cookie))
    assert new_cookie == f"{token}.node2"
    # node3 learns the new route: a request there with the old cookie gets .node2
    assert wait_for(lambda: "set-cookie" in node3.request("GET", "/", cookie).headers, 5)
    assert cookie_of(node3.request("GET", "/", cookie)) == f"{token}.node2"
    assert reads(node3, new_cookie) == {"cart": ["apple", "pear"]}


def test_a_late_node_gets_every_session_before_serving(network4: Network) -> None:
    nodes = start_cluster(network4, count=3)
    cookies = [
        cookie_of(nodes[i % 3].request("POST", "/update", json={"i": i})) for i in range(5000)
    ]
    stop = threading.Event()
    written: list[tuple[str, int]] = []

    def keep_writing() -> None:  # writes that land while node4 is transferring
        i = 0
        while not stop.is_set():
            cookie = cookies[i % len(cookies)]
            nodes[0].request("POST", "/update", cookie, json={"late": i})
            written.append((cookie, i))
            i += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        node4 = WebNode(network4, network4.hosts[3]).start()  # answers only after transfer
    finally:
        stop.set()
        writer.join()
    assert node4.state()["sessions"] == 5000
    for i in range(0, 5000, 97):
        assert reads(node4, cookies[i])["i"] == i
    last: dict[str, int] = {}
    for cookie, i in written:
        last[cookie] = i
    assert wait_for(
        lambda: all(reads(node4, c).get("late") == i for c, i in list(last.items())[-50:]), 10
    )


def test_concurrent_writes_on_every_node_converge(network: Network) -> None:
    nodes = start_cluster(network)
    cookie = cookie_of(nodes[0].request("POST", "/update", json={"k": 0}))
    assert wait_for(lambda: all(reads(n, cookie) == {"k": 0} for n in nodes), 5)

    def hammer(index: int) -> None:
        for j in range(30):
            nodes[index].request("POST", "/update", cookie, json={"k": j, f"own{index}": j})

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wait_for(lambda: len({n.state()["fingerprint"] for n in nodes}) == 1, 15)
    final = reads(nodes[2], cookie)
    assert final["own0"] == final["own1"] == final["own2"] == 29


def test_a_partitioned_node_converges_after_healing(network: Network) -> None:
    nodes = start_cluster(network)
    cookie = cookie_of(nodes[0].request("POST", "/update", json={"before": 1}))
    assert wait_for(lambda: reads(nodes[2], cookie) == {"before": 1}, 5)
    network.link_down(nodes[2].host)
    nodes[0].request("POST", "/update", cookie, json={"side": "majority"})
    nodes[2].request("POST", "/update", cookie, json={"island": True})
    other = cookie_of(nodes[2].request("POST", "/update", json={"born": "on the island"}))
    network.link_up(nodes[2].host)
    assert wait_for(lambda: len({n.state()["fingerprint"] for n in nodes}) == 1, 30)
    assert reads(nodes[1], cookie) == {"before": 1, "side": "majority", "island": True}
    assert reads(nodes[0], other) == {"born": "on the island"}


def test_invalidate_regenerate_and_listeners_cross_nodes(network: Network) -> None:
    node1, node2, _ = start_cluster(network, CLUSTERSESSION_CHANNEL_SEND_OPTIONS="6")
    cookie = cookie_of(node1.request("POST", "/update", json={"user": "alice"}))
    heard = [e for e in node2.state()["heard"] if e["kind"] == "added"]
    assert heard == [{"kind": "added", "id": cookie, "remote": True, "name": "user"}]
    new_id = node1.request("POST", "/call/regenerate_id", cookie).text
    assert reads(node2, new_id) == {"user": "alice"}
    assert reads(node2, cookie) == {}
    node2.request("POST", "/call/invalidate", new_id)
    assert reads(node1, new_id) == {}


@pytest.mark.parametrize("interval", [3])
def test_expiry_everywhere_but_reads_keep_a_session_alive(network: Network, interval: int) -> None:
    env = {
        "CLUSTERSESSION_MANAGER__MAX_INACTIVE_INTERVAL": str(interval),
        "CLUSTERSESSION_MANAGER__EXPIRY_SWEEP_INTERVAL": "0.5",
    }
    node1, node2, node3 = start_cluster(network, **env)
    idle = cookie_of(node1.request("POST", "/update", json={"idle": True}))
    busy = cookie_of(node1.request("POST", "/update", json={"busy": True}))
    assert wait_for(lambda: node2.state()["sessions"] == 2 and node3.state()["sessions"] == 2, 5)
    # Read `busy` on node1 only, for twice its interval; never touch it elsewhere.
    deadline_reads = 2 * interval / 0.25
    for _ in range(int(deadline_reads)):
        assert reads(node1, busy) == {"busy": True}
        threading.Event().wait(0.25)  # a user clicking every 250 ms
    assert all(n.state()["sessions"] == 1 for n in (node1, node2, node3))
    assert reads(node2, idle) == {}
    assert reads(node2, busy) == {"busy": True}


def test_two_nodes_starting_together_both_get_the_sessions(network: Network) -> None:
    (node1,) = start_cluster(network, count=1)
    cookies = [cookie_of(node1.request("POST", "/update", json={"i": i})) for i in range(200)]
    node2, node3 = WebNode(network, network.hosts[1]), WebNode(network, network.hosts[2])
    node2.start(wait=False)
    node3.start(wait=False)
    assert node2.wait_ready(30) and node3.wait_ready(30)
    assert node2.state()["sessions"] == 200 and node3.state()["sessions"] == 200
    assert reads(node3, cookies[123]) == {"i": 123}


@pytest.mark.parametrize("mode", ["6", "8"])
def test_rolling_restart_loses_nothing(network: Network, mode: str) -> None:
    nodes = start_cluster(network, CLUSTERSESSION_CHANNEL_SEND_OPTIONS=mode)
    cookies = [cookie_of(nodes[0].request("POST", "/update", json={"n": -1})) for _ in range(20)]
    acknowledged: dict[str, int] = {}
    stop = threading.Event()

    def client() -> None:  # a balancer sending each request to the next node that answers
        i = 0
        while not stop.is_set():
            cookie = cookies[i % len(cookies)]
            node = nodes[i % len(nodes)]
            try:
                response = node.request("POST", "/update", cookie, json={"n": i})
            except Exception:  # the node is restarting: not acknowledged, try the next
                response = None
            if response is not None and response.status_code == 200:
                acknowledged[cookie] = i
            i += 1

    writer = threading.Thread(target=client)
    writer.start()
    try:
        for node in nodes:
            node.kill(signal.SIGTERM)  # graceful: lifespan shutdown, the node leaves
            node.start()
    finally:
        stop.set()
        writer.join()
    assert wait_for(lambda: len({n.state()["fingerprint"] for n in nodes}) == 1, 15)
    for node in nodes:
        assert node.state()["sessions"] == len(cookies)  # no session lost, in either mode
    if mode == "6":  # every acknowledged write is on every node
        for cookie, value in acknowledged.items():
            assert all(reads(n, cookie)["n"] == value for n in nodes), cookie
