"""Replicated sessions between middlewares in one process: real channels on loopback.

(The same scenarios with real uvicorn processes on separate hosts are in tests/cluster.
The protocol's own scenarios, with faults made on purpose, run on the in-memory
network in test_replication_memory.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from clustersession import (
    AttributeEvent,
    ClusterConfig,
    ClusterSessionMiddleware,
    SessionListener,
    TooManyActiveSessions,
)
from clustersession.sessions.delta_manager import DeltaManager

from ..support.app import ROUTES
from ..support.loopback import loopback_config, random_mcast_port
from ..support.polling import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.network]


class Node:
    """One app node: a middleware with its own channel, and an HTTP client for it."""

    def __init__(self, config: ClusterConfig, listeners: list[SessionListener]) -> None:
        self.config = config
        self.middleware = ClusterSessionMiddleware(
            Starlette(routes=ROUTES), config=config, listeners=listeners
        )
        assert isinstance(self.middleware.manager, DeltaManager)
        self.manager: DeltaManager = self.middleware.manager
        transport = httpx.ASGITransport(self.middleware)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def request(
        self, method: str, path: str, cookie: str | None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"cookie": f"session={cookie}"} if cookie else {}
        self.client.cookies.clear()  # each call says which cookie it carries
        return await self.client.request(method, path, headers=headers, **kwargs)


def cookie_of(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    return header.split(";", 1)[0].split("=", 1)[1]


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def cluster(mcast_port: int) -> AsyncIterator[NodeFactory]:
    nodes: list[Node] = []

    async def start(
        route: str,
        *,
        send_options: int = 8,
        listeners: list[SessionListener] | None = None,
        route_binder: bool = True,
        **changes: Any,
    ) -> Node:
        config = loopback_config(mcast_port, jvm_route=route, channel_send_options=send_options)
        manager = replace(config.manager, **changes) if changes else config.manager
        binder = replace(config.valves.route_binder, enabled=route_binder)
        valves = replace(config.valves, route_binder=binder)
        node = Node(replace(config, manager=manager, valves=valves), listeners or [])
        await node.manager.start()
        nodes.append(node)
        return node

    yield start
    for node in reversed(nodes):
        await node.manager.stop()
        await node.client.aclose()


@pytest.fixture
def mcast_port() -> int:
    return random_mcast_port()


async def until_members(nodes: list[Node], count: int) -> None:
    assert await eventually(lambda: all(len(n.manager.channel.members) == count for n in nodes))


async def test_a_write_is_readable_on_every_node(cluster: NodeFactory) -> None:
    a, b, c = await cluster("a"), await cluster("b"), await cluster("c")
    await until_members([a, b, c], 2)
    cookie = cookie_of(await a.request("POST", "/update", None, json={"user": "alice"}))
    assert cookie.endswith(".a")

    async def everywhere() -> bool:
        for node in (b, c):
            if (await node.request("GET", "/", cookie)).json() != {"user": "alice"}:
                return False
        return True

    for _ in range(200):
        if await everywhere():
            break
        await asyncio.sleep(0.01)
    assert await everywhere()


async def test_sync_mode_is_readable_elsewhere_as_soon_as_the_write_returns(
    cluster: NodeFactory,
) -> None:
    a, b = await cluster("a", send_options=6), await cluster("b", send_options=6)
    await until_members([a, b], 1)
    cookie = cookie_of(await a.request("POST", "/update", None, json={"n": 1}))
    for i in range(2, 30):
        await a.request("POST", "/update", cookie, json={"n": i})
        assert (await b.request("GET", "/", cookie)).json() == {"n": i}


async def test_failover_reroutes_the_cookie_and_tells_the_cluster(cluster: NodeFactory) -> None:
    a, b, c = (
        await cluster("a", send_options=6),
        await cluster("b", send_options=6),
        await cluster("c", send_options=6),
    )
    await until_members([a, b, c], 2)
    cookie = cookie_of(await a.request("POST", "/update", None, json={"cart": ["apple"]}))
    token = cookie.split(".")[0]
    # A request misrouted to b while a is alive: served, not renamed.
    response = await b.request("GET", "/", cookie)
    assert response.json() == {"cart": ["apple"]} and "set-cookie" not in response.headers
    await a.manager.stop()  # a is gone
    await until_members([b, c], 1)
    response = await b.request("GET", "/", cookie)
    assert response.json() == {"cart": ["apple"]}
    assert cookie_of(response) == f"{token}.b"
    assert await eventually(lambda: c.manager.store.get(token).route == "b")
    # The old cookie still works (same session), and is handed the new id again.
    response = await c.request("GET", "/", cookie)
    assert response.json() == {"cart": ["apple"]} and cookie_of(response) == f"{token}.b"


async def test_invalidate_and_regenerate_replicate(cluster: NodeFactory) -> None:
    a, b = await cluster("a", send_options=6), await cluster("b", send_options=6)
    await until_members([a, b], 1)
    cookie = cookie_of(await a.request("POST", "/update", None, json={"user": "alice"}))
    new_id = (await a.request("POST", "/call/regenerate_id", cookie)).text
    assert new_id != cookie
    assert (await b.request("GET", "/", new_id)).json() == {"user": "alice"}
    assert (await b.request("GET", "/", cookie)).json() == {}
    await b.request("POST", "/call/invalidate", new_id)
    assert (await a.request("GET", "/", new_id)).json() == {}
    assert len(a.manager.store) == 0


async def test_listeners_hear_remote_changes(cluster: NodeFactory) -> None:
    heard: list[AttributeEvent] = []

    class Ear(SessionListener):
        def attribute_added(self, event: AttributeEvent) -> None:
            heard.append(event)

    a = await cluster("a", send_options=6)
    b = await cluster("b", send_options=6, listeners=[Ear()])
    await until_members([a, b], 1)
    await a.request("POST", "/update", None, json={"user": "alice"})
    assert [(e.name, e.value, e.remote) for e in heard] == [("user", "alice", True)]


async def test_status_json_shows_members_and_traffic(cluster: NodeFactory) -> None:
    from clustersession.web.status import snapshot

    a, b = await cluster("a", send_options=6), await cluster("b", send_options=6)
    await until_members([a, b], 1)
    await a.request("POST", "/update", None, json={"x": 1})
    data = snapshot(a.manager, "a")
    assert data["distributable"] and data["sessions"] == 1
    (member,) = data["members"]
    assert member["route"] == "b" and member["messages_sent"] >= 1
    assert data["replication"]["deltas_sent"] >= 1
    # b's side: what it received from a, per member (this once read a key nobody wrote).
    (seen_by_b,) = snapshot(b.manager, "b")["members"]
    assert seen_by_b["route"] == "a" and seen_by_b["messages_received"] >= 1


async def test_shutdown_keeps_sessions_alive_elsewhere_and_destroys_nothing(
    cluster: NodeFactory,
) -> None:
    destroyed: list[str] = []

    class Watch(SessionListener):
        def session_destroyed(self, event: Any) -> None:
            destroyed.append(event.session_id)

    a = await cluster("a", send_options=6, listeners=[Watch()])
    b = await cluster("b", send_options=6)
    await until_members([a, b], 1)
    cookie = cookie_of(await a.request("POST", "/update", None, json={"k": 1}))
    await a.manager.stop()  # expire_sessions_on_shutdown = false, the seed's setting
    assert destroyed == []
    assert (await b.request("GET", "/", cookie)).json() == {"k": 1}


async def test_expire_sessions_on_shutdown_expires_them_everywhere(cluster: NodeFactory) -> None:
    a = await cluster("a", send_options=6, expire_sessions_on_shutdown=True)
    b = await cluster("b", send_options=6)
    await until_members([a, b], 1)
    cookie = cookie_of(await a.request("POST", "/update", None, json={"k": 1}))
    await a.manager.stop()
    assert (await b.request("GET", "/", cookie)).json() == {}


async def test_route_binder_exposes_the_original_id_and_can_be_disabled(
    cluster: NodeFactory,
) -> None:
    a = await cluster("a", send_options=6)
    b = await cluster("b", send_options=6)
    c = await cluster("c", send_options=6, route_binder=False)
    await until_members([a, b, c], 2)
    first = cookie_of(await a.request("POST", "/update", None, json={"x": 1}))
    second = cookie_of(await a.request("POST", "/update", None, json={"x": 2}))
    await a.manager.stop()
    await until_members([b, c], 1)
    response = await b.request("GET", "/original", first)
    assert response.json() == {"original": first}  # the id before the re-route
    assert cookie_of(response).endswith(".b")
    response = await c.request("GET", "/original", second)  # the binder is off on c
    assert response.json() == {"original": None}
    assert "set-cookie" not in response.headers
    assert (await c.request("GET", "/", second)).json() == {"x": 2}


async def test_max_active_sessions_counts_replicated_copies_as_in_tomcat(
    cluster: NodeFactory,
) -> None:
    a = await cluster("a", send_options=6)
    b = await cluster("b", send_options=6, max_active_sessions=1)
    await until_members([a, b], 1)
    cookie = cookie_of(await a.request("POST", "/update", None, json={"user": "ann"}))
    assert len(b.manager.store) == 1  # sync mode: b applied it before a answered
    with pytest.raises(TooManyActiveSessions):  # what the app sees on b
        await b.request("POST", "/update", None, json={"user": "bob"})
    assert b.manager.view().rejected_sessions == 1
    assert len(b.manager.store) == len(a.manager.store) == 1
    # The replicated session itself is served and written on b as usual.
    written = await b.request("POST", "/update", cookie, json={"cart": 2})
    assert written.json() == {"user": "ann", "cart": 2}


async def test_attributes_outside_the_name_filter_stay_on_their_node(
    cluster: NodeFactory,
) -> None:
    # Tomcat's sessionAttributeNameFilter: only matching names are replicated.
    a = await cluster("a", send_options=6, session_attribute_name_filter="user|cart")
    b = await cluster("b", send_options=6, session_attribute_name_filter="user|cart")
    await until_members([a, b], 1)
    cookie = cookie_of(await a.request("POST", "/update", None, json={"user": "ann", "cache": 1}))
    await a.request("POST", "/update", cookie, json={"cart": [1], "cache": 2})
    assert (await a.request("GET", "/", cookie)).json() == {"user": "ann", "cart": [1], "cache": 2}
    assert (await b.request("GET", "/", cookie)).json() == {"user": "ann", "cart": [1]}
    # Node-local attributes are not part of what anti-entropy compares (else it would
    # "repair" them forever): the two nodes' digests agree.
    assert a.manager.store.buckets == b.manager.store.buckets
    # Written on b, the local attribute is b's own; a keeps its own.
    await b.request("POST", "/update", cookie, json={"cache": "b"})
    assert (await b.request("GET", "/", cookie)).json()["cache"] == "b"
    assert (await a.request("GET", "/", cookie)).json()["cache"] == 2
