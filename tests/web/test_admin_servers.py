"""The admin API between real uvicorn nodes: "log out everywhere" and the per-user limit.

Three nodes on loopback (tests/support/servers.py), ``manager.principal_attribute``
= ``"user"``; every invalidation goes through one node and must be gone on all.
"""

from __future__ import annotations

import pytest

from ..support.polling import wait_for
from ..support.servers import Cluster, Server, running, start_uvicorn_nodes

pytestmark = pytest.mark.network

SETTINGS = {
    "MANAGER__PRINCIPAL_ATTRIBUTE": "user",
    "MANAGER__MAX_SESSIONS_PER_PRINCIPAL": "2",
    "CHANNEL_SEND_OPTIONS": "6",  # a write is answered once every member has it
}


def login(node: Server, user: str) -> str:
    reply = node.request("POST", "/update", json_body={"user": user})
    assert reply.status == 200 and reply.cookie is not None, reply.text
    return reply.cookie


def logged_in(node: Server, cookie: str) -> bool:
    return bool(node.request("GET", "/", cookie).json())


def everywhere(nodes: list[Server], predicate: object) -> bool:
    return all(predicate(node) for node in nodes)  # type: ignore[operator]


def test_log_out_everywhere_through_one_node_and_the_per_user_limit() -> None:
    cluster = Cluster()
    with running() as servers:
        nodes = start_uvicorn_nodes(
            servers, {f"a{i}": cluster.env(f"a{i}", **SETTINGS) for i in range(3)}
        )

        first = login(nodes[0], "ann")
        second = login(nodes[1], "ann")
        bob = login(nodes[2], "bob")
        assert wait_for(
            lambda: everywhere(
                nodes, lambda n: len(n.request("GET", "/principal/ann").json()) == 2
            ),
            20,
        )

        # A third login of ann (limit 2): her least recently used session goes, everywhere.
        assert logged_in(nodes[1], second)  # second is now more recent than first
        third = login(nodes[2], "ann")
        gone = lambda n: not logged_in(n, first)  # noqa: E731
        assert wait_for(lambda: everywhere(nodes, gone), 20), [
            n.request("GET", "/", first).text for n in nodes
        ]
        for node in nodes:
            assert logged_in(node, second) and logged_in(node, third) and logged_in(node, bob)
            assert node.request("GET", "/principal/ann").json() == sorted([second, third])

        # "Log out everywhere" through node 0: ann's sessions are gone on every node.
        reply = nodes[0].request("DELETE", "/principal/ann")
        assert reply.json() == {"invalidated": 2}
        ann_gone = lambda n: not logged_in(n, second) and not logged_in(n, third)  # noqa: E731
        assert wait_for(lambda: everywhere(nodes, ann_gone), 20)
        for node in nodes:
            assert node.request("GET", "/principal/ann").json() == []
            assert logged_in(node, bob)  # another user is untouched
            # Tombstones, as for session.invalidate(): the ids are retired, not just unknown.
            assert node.request("POST", "/update", second, json_body={"x": 1}).cookie is None
