"""The admin API in process: FastAPI dependencies, ``app.state``, lookups and the per-user limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from clustersession import ClusterConfig, ClusterSessionMiddleware, SessionEvent, SessionListener
from clustersession.config.sections import ManagerConfig
from clustersession.web.admin import SessionAdmin
from clustersession.web.fastapi import ClusterDep, SessionDep

SECRET = "test-secret-0123456789"


class Destroyed(SessionListener):
    def __init__(self) -> None:
        self.reasons: list[str | None] = []

    def session_destroyed(self, event: SessionEvent) -> None:
        self.reasons.append(event.reason)


def make_app(limit: int = -1) -> tuple[FastAPI, Destroyed]:
    manager = ManagerConfig(principal_attribute="user_id", max_sessions_per_principal=limit)
    config = ClusterConfig(secret=SECRET, jvm_route="n1", manager=manager)
    listener = Destroyed()
    seen_at_startup: list[object] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        seen_at_startup.append(app.state.clustersession)  # the app's own startup sees it
        yield

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(ClusterSessionMiddleware, config=config, listeners=[listener])

    @app.post("/login/{user}")
    def login(user: str, session: SessionDep) -> dict[str, str]:
        session["user_id"] = user
        return {"id": session.id}

    @app.get("/me")
    def me(session: SessionDep) -> dict[str, Any]:
        return {"id": session.id if session else None, "new": session.is_new, **session}

    @app.get("/sessions/{user}")
    def sessions(user: str, cluster: ClusterDep) -> list[str]:
        return [info.id for info in cluster.sessions_of(user)]

    @app.post("/logout-everywhere/{user}")
    async def logout_everywhere(user: str, cluster: ClusterDep) -> int:
        return await cluster.invalidate_principal(user)

    @app.get("/admin/status")
    def status(cluster: ClusterDep) -> dict[str, Any]:
        return cluster.status()

    app.state.seen_at_startup = seen_at_startup
    return app, listener


def login(client: TestClient, user: str) -> str:
    """A new session for ``user`` (a device of theirs): its cookie."""
    client.cookies.clear()
    assert client.post(f"/login/{user}").status_code == 200
    cookie = client.cookies["session"]
    client.cookies.clear()
    return cookie


def me(client: TestClient, cookie: str) -> dict[str, Any]:
    """``/me`` as the device holding ``cookie``."""
    client.cookies.clear()
    client.cookies.set("session", cookie)
    answer: dict[str, Any] = client.get("/me").json()
    client.cookies.clear()
    return answer


def test_dependencies_give_a_typed_session_and_the_admin_api() -> None:
    app, listener = make_app()
    with TestClient(app) as client:
        (admin,) = app.state.seen_at_startup
        assert isinstance(admin, SessionAdmin) and admin is app.state.clustersession
        phone, laptop, other = (login(client, u) for u in ("ann", "ann", "bob"))
        ids = sorted([me(client, phone)["id"], me(client, laptop)["id"]])
        assert sorted(client.get("/sessions/ann").json()) == ids
        assert admin.count() == 3
        info = admin.get(ids[0])
        assert info is not None and info.principal == "ann" and info.route == "n1"
        assert client.get("/admin/status").json()["sessions"] == 3

        assert client.post("/logout-everywhere/ann").json() == 2
        assert me(client, phone)["id"] is None
        assert me(client, laptop)["id"] is None
        assert me(client, other)["user_id"] == "bob"
        assert admin.get(ids[0]) is None and admin.count() == 1
        assert listener.reasons == ["invalidated", "invalidated"]


def test_invalidate_one_session_outside_a_request() -> None:
    app, _ = make_app()
    with TestClient(app) as client:
        client.post("/login/ann")
        admin: SessionAdmin = app.state.clustersession
        (info,) = admin.sessions()
        assert admin.get(info.id.partition(".")[0]) == info  # the bare token works too
        assert client.portal.call(admin.invalidate, info.id) is True  # type: ignore[union-attr]
        assert client.portal.call(admin.invalidate, info.id) is False  # type: ignore[union-attr]
        assert client.get("/me").json()["id"] is None


def test_max_sessions_per_principal_evicts_the_least_recently_used() -> None:
    app, _ = make_app(limit=2)
    now = [1000.0]
    with TestClient(app) as client:
        app.state.clustersession.manager.clock = lambda: now[0]
        devices = []
        for _ in range(2):
            devices.append(login(client, "ann"))
            now[0] += 10
        me(client, devices[0])  # the first is now the most recently used
        now[0] += 10
        devices.append(login(client, "ann"))
        answers = [me(client, cookie) for cookie in devices]
        assert [a.get("user_id") for a in answers] == ["ann", None, "ann"]


def test_without_principal_attribute_a_principal_lookup_says_what_is_missing() -> None:
    app = FastAPI()
    app.add_middleware(ClusterSessionMiddleware, secret_key=SECRET)
    with TestClient(app), pytest.raises(LookupError, match="principal_attribute"):
        app.state.clustersession.sessions_of("ann")


def test_a_limit_needs_a_principal_attribute() -> None:
    from clustersession.config import ConfigError

    with pytest.raises(ConfigError, match="principal_attribute"):
        ManagerConfig(max_sessions_per_principal=3)
