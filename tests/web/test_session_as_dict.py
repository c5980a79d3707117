"""A stored session reads as the plain dict it holds, however the app reads it.

Values are decoded when first touched (see ``Session``), so every way of reading
the dict as a whole must see the decoded values, never a placeholder.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from clustersession import ClusterSessionMiddleware
from clustersession.sessions.change import Change

STORED = {"user": "ann", "roles": ["admin"], "cart": [{"sku": "a", "qty": 1}], "n": 3}

READS: dict[str, Callable[[Any], Any]] = {
    "json.dumps": lambda s: json.loads(json.dumps(s)),
    "dict()": dict,
    "unpacking": lambda s: {**s},
    "copy()": lambda s: s.copy(),
    "copy.copy": lambda s: dict(copy.copy(s)),
    "copy.deepcopy": lambda s: dict(copy.deepcopy(s)),
    "items()": lambda s: dict(s.items()),
    "values()": lambda s: dict(zip(s.keys(), s.values(), strict=True)),
    "iteration": lambda s: {key: s[key] for key in s},
    "or": lambda s: s | {},
    "ror": lambda s: {} | s,
    "equality": lambda s: STORED if s == STORED else None,
    "inequality": lambda s: None if s != STORED else STORED,
    "repr": lambda s: STORED if repr(s) == repr(STORED) else repr(s),
    "popitem": lambda s: dict([s.popitem(), s.popitem(), s.popitem(), s.popitem()]),
}


def served(read: Callable[[Any], Any]) -> TestClient:
    async def login(request: Request) -> JSONResponse:
        request.session.update(STORED)
        return JSONResponse({})

    async def view(request: Request) -> JSONResponse:
        return JSONResponse(read(request.session))

    app = Starlette(routes=[Route("/login", login), Route("/", view)])
    client = TestClient(ClusterSessionMiddleware(app, secret_key="example"))
    client.get("/login")
    return client


@pytest.mark.parametrize("way", READS)
def test_every_way_of_reading_the_whole_session_sees_its_values(way: str) -> None:
    assert served(READS[way]).get("/").json() == STORED


def test_a_session_compares_equal_to_another_request_session() -> None:
    sessions: list[Any] = []

    async def login(request: Request) -> JSONResponse:
        request.session.update(STORED)
        return JSONResponse({})

    async def keep(request: Request) -> JSONResponse:
        sessions.append(request.session)
        return JSONResponse({})

    app = Starlette(routes=[Route("/login", login), Route("/keep", keep)])
    client = TestClient(ClusterSessionMiddleware(app, secret_key="example"))
    client.get("/login")
    client.get("/keep")
    client.get("/keep")
    assert sessions[0] == sessions[1]
    assert sessions[0] is not sessions[1]


def test_values_changed_in_place_after_whole_reads_are_saved() -> None:
    def read_then_change(session: Any) -> Any:
        for key, value in session.items():
            if key == "cart":
                value.append({"sku": "b", "qty": 2})
        return session["cart"]

    client = served(read_then_change)
    client.get("/")
    assert client.get("/").json() == [
        {"sku": "a", "qty": 1},
        {"sku": "b", "qty": 2},
        {"sku": "b", "qty": 2},
    ]


def test_pop_setdefault_and_get_return_the_stored_values() -> None:
    def use(session: Any) -> Any:
        return {
            "pop": session.pop("user"),
            "setdefault": session.setdefault("roles", []),
            "get": session.get("n"),
            "missing": session.get("nope", "default"),
            "in": "cart" in session,
            "len": len(session),
        }

    assert served(use).get("/").json() == {
        "pop": "ann",
        "setdefault": ["admin"],
        "get": 3,
        "missing": "default",
        "in": True,
        "len": 3,
    }


def test_a_value_that_does_not_decode_spares_a_request_that_reads_other_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def login(request: Request) -> JSONResponse:
        request.session.update(STORED)
        return JSONResponse({})

    async def user(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.session["user"], "x": request.session.get("x")})

    app = Starlette(routes=[Route("/login", login), Route("/user", user)])
    middleware = ClusterSessionMiddleware(app, secret_key="example")
    client = TestClient(middleware)
    client.get("/login")
    (record,) = middleware.manager.store
    bad = Change(record.token, record.last_accessed_at, values={"x": b"\xc1"})
    bad.value_stamps = {"x": middleware.manager.hlc.stamp()}
    middleware.manager.apply(bad, remote=True)
    with caplog.at_level("ERROR", logger="clustersession"):
        assert client.get("/user").json() == {"user": "ann", "x": None}
    assert "attribute 'x' does not decode" in caplog.text
