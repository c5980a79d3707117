"""Several uvicorn workers per host under DNS and static membership (no multicast).

Every worker of a host binds its own receiver port of the ``auto_bind`` range; the
members must find every worker of every host, not only the one on ``receiver.port``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ..support.polling import wait_for
from .network import Network
from .web_nodes import WebNode, cookie_of

pytestmark = pytest.mark.hosts

WORKERS = 3
HOSTS = 3
PORT = 4000

MEMBERSHIPS = {
    "dns": {
        "CLUSTERSESSION_MEMBERSHIP__KIND": "dns",
        "CLUSTERSESSION_MEMBERSHIP__DNS_NAME": "cluster",
    },
    # one address per host, at receiver.port: the other workers are found from there
    "static": {
        "CLUSTERSESSION_MEMBERSHIP__KIND": "static",
        "CLUSTERSESSION_MEMBERSHIP__STATIC_MEMBERS": ",".join(
            f"node{i}:{PORT}" for i in range(1, HOSTS + 1)
        ),
    },
}


def every_worker(
    node: WebNode, path: str, check: Callable[[dict[str, Any]], bool], cookie: str | None = None
) -> Callable[[], bool]:
    """A predicate: each of the node's workers has answered ``path`` passing ``check``.

    Every request is a new connection, so any worker may take it; a worker that
    fails the check is asked again (its pid leaves ``passed``).
    """
    passed: set[int] = set()

    def all_passed() -> bool:
        try:
            answer = node.fresh(path, cookie).json()
        except httpx.TransportError:
            return False
        if check(answer):
            passed.add(answer["pid"])
        else:
            passed.discard(answer["pid"])
        return len(passed) == WORKERS

    return all_passed


def sees_every_other_worker(health: dict[str, Any]) -> bool:
    """The worker that answered ``/health`` lists every other worker of the cluster."""
    expected = sorted(f"node{i}" for i in range(1, HOSTS + 1) for _ in range(WORKERS))
    expected.remove(health["route"])  # itself
    return bool(health["members"] == expected)


@pytest.mark.parametrize("kind", sorted(MEMBERSHIPS))
def test_three_workers_per_host_all_find_each_other(network: Network, kind: str) -> None:
    env = {"CLUSTERSESSION_RECEIVER__PORT": str(PORT), **MEMBERSHIPS[kind]}
    nodes = [WebNode(network, host, workers=WORKERS, **env) for host in network.hosts]
    for node in nodes:
        node.start(wait=False)
    for node in nodes:
        assert node.wait_ready(60), node.log.read_text()
    for node in nodes:
        assert wait_for(every_worker(node, "/health", sees_every_other_worker), 30), (
            node.host.name,
            node.fresh("/health").json(),
            node.log.read_text(),
        )

    cookie = cookie_of(nodes[0].request("POST", "/update", json={"user": "alice"}))
    for node in nodes[1:]:
        reads_it = every_worker(node, "/node", lambda a: a["session"] == {"user": "alice"}, cookie)
        assert wait_for(reads_it, 20), node.host.name
