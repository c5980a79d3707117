"""SessionListener callbacks fire for local changes, marked local."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from clustersession import (
    AttributeEvent,
    ClusterSessionMiddleware,
    Session,
    SessionEvent,
    SessionListener,
)


class Recorder(SessionListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def session_created(self, event: SessionEvent) -> None:
        self.events.append(("created", event))

    def session_destroyed(self, event: SessionEvent) -> None:
        self.events.append(("destroyed", event))

    def session_id_changed(self, event: SessionEvent) -> None:
        self.events.append(("id_changed", event))

    def attribute_added(self, event: AttributeEvent) -> None:
        self.events.append(("added", event))

    def attribute_replaced(self, event: AttributeEvent) -> None:
        self.events.append(("replaced", event))

    def attribute_removed(self, event: AttributeEvent) -> None:
        self.events.append(("removed", event))


class Broken(SessionListener):
    def session_created(self, event: SessionEvent) -> None:
        raise RuntimeError("listener bug")


async def update(request: Request) -> PlainTextResponse:
    request.session.update(await request.json())
    return PlainTextResponse("ok")


def remove(request: Request) -> PlainTextResponse:
    del request.session[request.path_params["key"]]
    return PlainTextResponse("ok")


def call(request: Request) -> PlainTextResponse:
    session = request.session
    assert isinstance(session, Session)
    getattr(session, request.path_params["method"])()
    return PlainTextResponse("ok")


def make_client(*listeners: SessionListener) -> TestClient:
    app = Starlette(
        routes=[
            Route("/update", update, methods=["POST"]),
            Route("/remove/{key}", remove, methods=["POST"]),
            Route("/call/{method}", call, methods=["POST"]),
        ],
        middleware=[
            Middleware(ClusterSessionMiddleware, secret_key="k", listeners=list(listeners))
        ],
    )
    return TestClient(app)


def test_lifecycle_and_attribute_events() -> None:
    recorder = Recorder()
    client = make_client(recorder)
    client.post("/update", json={"user": "alice", "theme": "dark"})
    client.post("/update", json={"theme": "light", "theme2": None})
    client.post("/update", json={"theme": "light"})  # same value: nothing replaced
    client.post("/remove/theme2")
    client.post("/call/regenerate_id")
    client.post("/call/invalidate")

    kinds = [kind for kind, _ in recorder.events]
    assert kinds == [
        "created",
        "added",
        "added",
        "replaced",
        "added",
        "removed",
        "id_changed",
        "destroyed",
    ]
    events = dict(zip(kinds, (event for _, event in recorder.events), strict=False))
    assert all(not event.remote for _, event in recorder.events)
    replaced = events["replaced"]
    assert (replaced.name, replaced.value, replaced.old_value) == ("theme", "light", "dark")
    removed = events["removed"]
    assert (removed.name, removed.value, removed.old_value) == ("theme2", None, None)
    changed = events["id_changed"]
    assert changed.previous_id != changed.session_id
    assert changed.previous_id == events["created"].session_id
    assert events["destroyed"].reason == "invalidated"
    assert events["destroyed"].session_id == changed.session_id


def test_a_failing_listener_does_not_break_the_request_or_others() -> None:
    recorder = Recorder()
    client = make_client(Broken(), recorder)
    response = client.post("/update", json={"user": "alice"})
    assert response.status_code == 200
    assert [kind for kind, _ in recorder.events] == ["created", "added"]
