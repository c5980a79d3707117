"""The WSGI adapters under real servers: gunicorn and uvicorn processes on loopback.

Several workers of one server (each its own cluster member, same route, its own
receiver port), Flask and Django nodes as separate "hosts" (routes, ports), and a
mixed Flask + Django + Starlette cluster with one cookie. Every server is a
process group stopped at teardown, even when a test fails; every wait polls
against a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ..support.polling import wait_for
from ..support.servers import (
    DJANGO,
    FLASK,
    Cluster,
    Server,
    Servers,
    concurrently,
    gunicorn,
    running,
    uvicorn,
)

pytestmark = pytest.mark.network

SYNC = {"CHANNEL_SEND_OPTIONS": "6"}  # a write is answered once every member applied it


def members(node: Server) -> list[str]:
    """The routes of the other members, as the worker that answers sees them."""
    health = node.health()
    assert health is not None, node.output()
    routes: list[str] = health["members"]
    return routes


def read_everywhere(server: Server, cookie: str, *, rounds: int = 20) -> dict[int, list[Any]]:
    """``/node`` with ``cookie`` in rounds of concurrent requests until 3 workers answered.

    Concurrent requests keep workers busy, so the kernel hands the next
    connections to the others. Returns the sessions each worker pid answered.
    """
    seen: dict[int, list[Any]] = {}
    for _ in range(rounds):
        replies = concurrently([lambda: server.request("GET", "/node", cookie)] * 6)
        for reply in replies:
            assert reply.status == 200, reply.text
            answer = reply.json()
            seen.setdefault(answer["pid"], []).append(answer["session"])
        if len(seen) >= 3:
            break
    return seen


def assert_siblings_share(server: Server) -> None:
    """A session written through one worker is read by every worker that serves next."""
    written = server.request("POST", "/update", json_body={"user": "alice", "cart": ["apple"]})
    assert written.status == 200, written.text
    cookie = written.cookie
    assert cookie is not None and cookie.endswith(f".{server.route}"), written.headers
    seen = read_everywhere(server, cookie)
    assert len(seen) >= 2, f"only worker(s) {sorted(seen)} served: the kernel never spread"
    for pid, sessions in seen.items():
        assert all(s == {"user": "alice", "cart": ["apple"]} for s in sessions), (pid, sessions)
    # Each worker that served is a member of its own, all under the host's one route.
    assert wait_for(lambda: len(members(server)) >= len(seen) - 1, 10)
    assert set(members(server)) == {server.route}


def test_gunicorn_sync_workers_share_sessions() -> None:
    cluster = Cluster()
    with running() as servers:
        # Option 6: siblings sit behind one socket, so no balancer can send a user back
        # to the worker that wrote; the write must be on the others when it is answered.
        env = cluster.env("web", **SYNC)
        server = servers.start(gunicorn("gunicorn-w3", FLASK, env, workers=3))
        server.wait_healthy()
        assert_siblings_share(server)


def test_uvicorn_workers_share_sessions() -> None:
    cluster = Cluster()
    with running() as servers:
        server = servers.start(uvicorn("uvicorn-w3", cluster.env("asgi", **SYNC), workers=3))
        server.wait_healthy()
        # Every worker joined in lifespan, before it served: wait until they know each other.
        server.wait_members(["asgi", "asgi"])
        assert_siblings_share(server)


# -- Flask and Django nodes as separate hosts ---------------------------------------


class Farm:
    """Three Flask and three Django nodes (gunicorn, one worker each) of one cluster.

    ``f1`` and ``d1`` send with option 6; the others asynchronously (the default).
    """

    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        self.cluster = Cluster()
        self.nodes: dict[str, Server] = {}
        for route in ("f1", "f2", "f3", "d1", "d2", "d3"):
            self.add(route)

    def add(self, route: str, *, hooks: bool = False) -> Server:
        """Start one more node (``f…`` Flask, ``d…`` Django); returns at once."""
        app = FLASK if route.startswith("f") else DJANGO
        env = self.cluster.env(route, **(SYNC if route.endswith("1") else {}))
        node = self.servers.start(gunicorn(route, app, env, hooks=hooks))
        self.nodes[route] = node
        return node

    def live(self, *excluding: str) -> list[Server]:
        """The nodes not killed, without ``excluding``."""
        running = [n for n in self.nodes.values() if n.process and n.process.poll() is None]
        return [node for node in running if node.route not in excluding]


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    with running() as servers:
        built = Farm(servers)
        for node in built.nodes.values():
            node.wait_healthy()
        for route, node in built.nodes.items():
            node.wait_members(r for r in built.nodes if r != route)
        yield built


def read(node: Server, cookie: str) -> Any:
    """The session ``cookie`` names, as ``node`` serves it."""
    reply = node.request("GET", "/", cookie)
    assert reply.status == 200, reply.text
    return reply.json()


def has(node: Server, cookie: str, expected: dict[str, Any], timeout: float = 10.0) -> bool:
    """Whether ``node`` serves ``expected`` for ``cookie`` before the deadline (async mode)."""
    return wait_for(lambda: read(node, cookie) == expected, timeout, 0.02)


def test_what_one_node_writes_every_other_reads(farm: Farm) -> None:
    f2, d2 = farm.nodes["f2"], farm.nodes["d2"]
    written = f2.request("POST", "/update", json_body={"user": "bob"})
    cookie = written.cookie
    assert cookie is not None and cookie.endswith(".f2")
    for node in farm.live("f2"):
        assert has(node, cookie, {"user": "bob"}), node.name
    # Django changes the list in place; the Flask nodes see it.
    appended = d2.request("POST", "/append/pear", cookie)
    assert appended.json() == {"user": "bob", "items": ["pear"]}
    assert appended.cookie in (None, cookie)  # the same id, whoever writes
    for node in farm.live("d2"):
        assert has(node, cookie, {"user": "bob", "items": ["pear"]}), node.name


def test_with_send_options_6_the_answer_waits_for_every_peer(farm: Farm) -> None:
    for writer in (farm.nodes["f1"], farm.nodes["d1"]):
        written = writer.request("POST", "/update", json_body={"by": writer.route})
        cookie = written.cookie
        assert cookie is not None
        for node in farm.live(writer.route):
            assert read(node, cookie) == {"by": writer.route}, node.name  # no polling


@pytest.mark.parametrize(("victim", "survivor"), [("d3", "f2"), ("f3", "d2")])
def test_sigkill_of_the_owner_reroutes_its_sessions(farm: Farm, victim: str, survivor: str) -> None:
    owner, other = farm.nodes[victim], farm.nodes[survivor]
    cookie = owner.request("POST", "/update", json_body={"cart": ["milk"]}).cookie
    assert cookie is not None and cookie.endswith(f".{victim}")
    assert has(other, cookie, {"cart": ["milk"]})
    owner.kill()
    # The next request on another node has the session: it was replicated before the crash.
    assert read(other, cookie) == {"cart": ["milk"]}
    # Once that node knows the owner is gone (at once if the kernel's reset of the
    # connections told it, else after drop_time), the session is its own: the answer
    # to the old cookie carries the re-routed id, same token, the survivor's route.
    assert wait_for(lambda: victim not in members(other), 15)
    reply = other.request("GET", "/node", cookie)
    assert reply.json()["session"] == {"cart": ["milk"]}
    token = cookie.rpartition(".")[0]
    new_cookie = reply.cookie
    assert new_cookie is not None and new_cookie == f"{token}.{survivor}", reply.headers
    for node in farm.live(survivor):
        assert has(node, new_cookie, {"cart": ["milk"]}), node.name


def test_a_late_joiner_serves_its_first_request_with_the_sessions(farm: Farm) -> None:
    f2, d2 = farm.nodes["f2"], farm.nodes["d2"]
    cookie = f2.request("POST", "/update", json_body={"early": True}).cookie
    assert cookie is not None
    assert has(d2, cookie, {"early": True})
    # f4 has no hooks: its worker joins with its first request. d4 has the optional
    # clustersession.gunicorn hooks: its worker joins before it accepts one (the
    # regression: the Django engine, built on first use, was not there to start).
    late = [farm.add("f4"), farm.add("d4", hooks=True)]
    for node in late:
        assert wait_for(node.listening, 30), node.output()
    assert wait_for(lambda: "d4" in members(f2), 30), late[1].output()
    assert "f4" not in members(f2)  # nothing asked it anything yet
    for node in late:
        # f4: the first request of its only worker; the member joins, fetches the
        # sessions, then answers. d4: fetched them before.
        assert read(node, cookie) == {"early": True}, node.output()
    # A graceful stop leaves: by the time the server has exited, the others know
    # (a crash would keep it listed until drop_time passed without a heartbeat).
    for node in late:
        assert node.terminate()
    for node in late:
        assert node.wait_exit() == 0, node.output()
        assert "Traceback" not in node.output(), node.output()
    assert not {"f4", "d4"} & set(members(f2))


# -- a mixed cluster ---------------------------------------------------------------


def test_flask_django_and_starlette_share_one_cookie() -> None:
    cluster = Cluster()
    with running() as servers:
        nodes = [
            servers.start(gunicorn("flask", FLASK, cluster.env("flask"))),
            servers.start(gunicorn("django", DJANGO, cluster.env("django"))),
            servers.start(uvicorn("starlette", cluster.env("starlette"))),
        ]
        for node in nodes:
            node.wait_healthy()
        for node in nodes:
            node.wait_members(n.route for n in nodes if n is not node)
        cookie: str | None = None
        expected: dict[str, Any] = {}
        for writer in nodes:
            written = writer.request("POST", "/update", cookie, json_body={writer.route: 1})
            assert written.status == 200, written.text
            if cookie is None:
                cookie = written.cookie
                assert cookie is not None and cookie.endswith(".flask")
            assert written.cookie in (None, cookie), written.headers  # one id, one cookie
            expected[writer.route] = 1
            for node in nodes:
                assert has(node, cookie, expected), (node.name, read(node, cookie), expected)
