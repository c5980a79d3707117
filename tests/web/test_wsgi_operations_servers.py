"""Operations on Flask and Django nodes under gunicorn: probes, metrics, status, admin.

What the ASGI middleware serves, the WSGI adapters serve too: ``valves.health``
probes, ``metrics.path`` and the status page in front of the app (Flask's
``init_app``, Django's ``with_operations``); the admin API from a view
(``clustersession.flask.admin(current_app)``, ``clustersession.django.admin()``);
``manager.max_sessions_per_principal`` after a login on either; the primary
indicator in Django's ``request.META``. Real gunicorn processes on loopback.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..support.polling import wait_for
from ..support.servers import DJANGO, FLASK, Cluster, Server, gunicorn, running

pytestmark = pytest.mark.network

OPERATIONS = {
    "VALVES__HEALTH__LIVENESS_PATH": "/livez",
    "VALVES__HEALTH__READINESS_PATH": "/readyz",
    "METRICS__PATH": "/metrics",
    "VALVES__STATUS__PATH": "/cluster-status",
}


def sessions_active(node: Server) -> float:
    reply = node.request("GET", "/metrics")
    assert reply.status == 200, reply.text
    for family in text_string_to_metric_families(reply.text):
        if family.name == "clustersession_sessions_active":
            return float(family.samples[0].value)
    raise AssertionError(f"no clustersession_sessions_active in {reply.text}")


@pytest.mark.parametrize("app", [FLASK, DJANGO], ids=["flask", "django"])
def test_probes_metrics_and_status_are_served_in_front_of_the_app(app: str) -> None:
    cluster = Cluster()
    with running() as servers:
        node = servers.start(gunicorn("ops", app, cluster.env("ops", **OPERATIONS)))
        assert wait_for(node.listening, 60), node.output()
        # The probe alone starts the member (a balancer sends nothing before ready).
        assert wait_for(lambda: node.request("GET", "/readyz").status == 200, 60), node.output()
        ready = node.request("GET", "/readyz")
        assert (ready.text, dict(ready.headers).get("Content-Type", "")) == (
            "ready\n",
            "text/plain; charset=utf-8",
        )
        live = node.request("GET", "/livez")
        assert (live.status, live.text) == (200, "live\n")
        before = sessions_active(node)
        written = node.request("POST", "/update", json_body={"user": "ann"})
        assert written.status == 200 and written.cookie is not None, written.text
        assert sessions_active(node) == before + 1
        status = node.request("GET", "/cluster-status.json")  # loopback: no token needed
        assert status.status == 200, status.text
        assert status.json()["route"] == "ops"
        page = node.request("GET", "/cluster-status")
        assert page.status == 200 and "text/html" in dict(page.headers).get("Content-Type", "")
        # The app still serves everything else.
        assert node.request("GET", "/", written.cookie).json() == {"user": "ann"}


def read(node: Server, cookie: str) -> Any:
    reply = node.request("GET", "/", cookie)
    assert reply.status == 200, reply.text
    return reply.json()


def gone_everywhere(nodes: list[Server], cookie: str) -> bool:
    return all(read(node, cookie) == {} for node in nodes)


def login(node: Server, user: str) -> str:
    reply = node.request("POST", f"/login/{user}")
    assert reply.status == 200 and reply.cookie is not None, reply.text
    return reply.cookie


def test_admin_limit_and_primary_indicator_on_flask_and_django() -> None:
    cluster = Cluster()
    settings = {
        "CHANNEL_SEND_OPTIONS": "6",  # a login is answered once every member has it
        "MANAGER__PRINCIPAL_ATTRIBUTE": "user",
        "MANAGER__MAX_SESSIONS_PER_PRINCIPAL": "2",
        "VALVES__REPLICATION__PRIMARY_INDICATOR": "true",
    }
    with running() as servers:
        flask = servers.start(gunicorn("f", FLASK, cluster.env("f", **settings)))
        django = servers.start(gunicorn("d", DJANGO, cluster.env("d", **settings)))
        nodes = [flask, django]
        for node in nodes:
            node.wait_healthy()
        flask.wait_members(["d"])
        django.wait_members(["f"])

        # (2) the per-principal limit, enforced by each adapter after its commit.
        first, second = login(flask, "ann"), login(django, "ann")
        bob = login(flask, "bob")
        third = login(django, "ann")  # Django evicts ann's least recently used: first
        assert wait_for(lambda: gone_everywhere(nodes, first), 10)
        fourth = login(flask, "ann")  # Flask evicts second
        assert wait_for(lambda: gone_everywhere(nodes, second), 10)
        for node in nodes:
            assert read(node, third) == read(node, fourth) == {"user": "ann"}

        # (3) the admin API from a view: the same answer on both nodes.
        for node in nodes:
            ids = node.request("GET", "/admin/of/ann").json()["ids"]
            assert sorted(ids) == sorted([third, fourth]), (node.name, ids)
        logout = django.request("POST", "/admin/logout/ann")
        assert logout.json() == {"invalidated": 2}, logout.text
        assert wait_for(lambda: all(gone_everywhere(nodes, c) for c in (third, fourth)), 10)
        assert flask.request("GET", "/admin/of/ann").json() == {"ids": []}
        assert read(django, bob) == {"user": "bob"}  # bob is untouched

        # (4) the primary indicator: true on the owner, false on a copy, Django included.
        assert django.request("GET", "/primary", bob).json() == {"primary": False}
        assert flask.request("GET", "/primary", bob).json() == {"primary": True}
        owned = login(django, "cy")
        assert django.request("GET", "/primary", owned).json() == {"primary": True}
        assert flask.request("GET", "/primary", owned).json() == {"primary": False}
        assert django.request("GET", "/primary").json() == {"primary": None}  # no session
