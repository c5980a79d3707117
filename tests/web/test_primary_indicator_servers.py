"""``valves.replication.primary_indicator`` between real uvicorn nodes.

Tomcat's ReplicationValve sets a request attribute saying whether this node is
the session's primary; ours is the scope (WSGI: environ) key named by
``primary_indicator_name``: true on the node whose route the id carries, false
on a node serving a replicated copy, true again once a failover re-routed the
session here.
"""

from __future__ import annotations

import pytest

from ..support.servers import Cluster, running, uvicorn

pytestmark = pytest.mark.network


def test_the_primary_indicator_follows_the_sessions_route() -> None:
    cluster = Cluster()
    settings = {"VALVES__REPLICATION__PRIMARY_INDICATOR": "true", "CHANNEL_SEND_OPTIONS": "6"}
    with running() as servers:
        a = servers.start(uvicorn("p1", cluster.env("p1", **settings)))
        b = servers.start(uvicorn("p2", cluster.env("p2", **settings)))
        a.wait_healthy()
        b.wait_healthy()
        a.wait_members(["p2"])
        b.wait_members(["p1"])
        assert a.request("GET", "/primary").json() == {"primary": None}  # no session
        cookie = a.request("POST", "/update", json_body={"x": 1}).cookie
        assert cookie is not None and cookie.endswith(".p1")
        assert a.request("GET", "/primary", cookie).json() == {"primary": True}
        assert b.request("GET", "/primary", cookie).json() == {"primary": False}

        a.kill()  # failover: p2 takes the session over (route binder) and is its primary
        b.wait_members([])
        reply = b.request("GET", "/primary", cookie)
        assert reply.json() == {"primary": True}
        assert reply.cookie is not None and reply.cookie.endswith(".p2")


def test_without_the_setting_there_is_no_indicator() -> None:
    cluster = Cluster()
    with running() as servers:
        a = servers.start(uvicorn("q1", cluster.env("q1")))
        a.wait_healthy()
        cookie = a.request("POST", "/update", json_body={"x": 1}).cookie
        assert a.request("GET", "/primary", cookie).json() == {"primary": None}
