"""No log line carries a whole session id: a logged id is a usable credential."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from clustersession import ClusterConfig, ClusterSessionMiddleware
from clustersession.sessions.change import Change
from clustersession.sessions.ids import loggable_id


async def update(request: Request) -> JSONResponse:
    request.session.update(await request.json())
    return JSONResponse(request.session)


def spoil_in_place(request: Request) -> PlainTextResponse:
    # A value changed in place into something that cannot be stored: the setter
    # never saw it, so the failure only shows when the request's changes are made.
    request.session["cart"].append(object())
    return PlainTextResponse("spoiled")


def view(request: Request) -> JSONResponse:
    return JSONResponse({key: request.session[key] for key in request.session if key != "cart"})


ROUTES = [
    Route("/", view),
    Route("/update", update, methods=["POST"]),
    Route("/spoil", spoil_in_place, methods=["POST"]),
]


def make() -> ClusterSessionMiddleware:
    return ClusterSessionMiddleware(
        Starlette(routes=ROUTES),
        secret_key="example-secret-key",
        config=ClusterConfig(jvm_route="node1"),
    )


def cookie_value(response: Any) -> str:
    match = re.match(r"session=([^;]*);", response.headers["set-cookie"])
    assert match is not None
    return match[1]


def assert_never_logged(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    logged = caplog.text + "".join(
        repr(record.args) + str(record.exc_info) for record in caplog.records
    )
    for value in secrets:
        assert value not in logged
        # Neither the token alone (the id without its route).
        assert value.partition(".")[0] not in logged


def test_loggable_id_keeps_eight_characters() -> None:
    assert loggable_id("abcdefghijklmnop.node1") == "abcdefgh…"
    assert loggable_id(None) == "<none>"


def test_the_not_saved_error_names_the_session_by_a_cut_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    middleware = make()
    client = TestClient(middleware)
    session_id = cookie_value(client.post("/update", json={"user": "ann", "cart": []}))
    with caplog.at_level(logging.DEBUG, logger="clustersession"):
        assert client.post("/spoil").text == "spoiled"
    (error,) = [r for r in caplog.records if "not saved" in r.getMessage()]
    assert session_id[:8] + "…" in error.getMessage()
    assert_never_logged(caplog, session_id)
    # The rest of the session is untouched and still served.
    assert client.get("/").json() == {"user": "ann"}


def test_a_refused_cookie_is_not_logged_whole(caplog: pytest.LogCaptureFixture) -> None:
    middleware = make()
    session_id = cookie_value(TestClient(middleware).post("/update", json={"user": "ann"}))
    # Signed with another secret: refused, and logged at debug level.
    other = ClusterSessionMiddleware(
        Starlette(routes=ROUTES),
        secret_key="another-secret-key",
        config=ClusterConfig(jvm_route="node1"),
    )
    foreign = cookie_value(TestClient(other).post("/update", json={"user": "eve"}))
    with caplog.at_level(logging.DEBUG, logger="clustersession"):
        assert TestClient(middleware, cookies={"session": foreign}).get("/").json() == {}
    assert any("refused session cookie" in r.getMessage() for r in caplog.records)
    assert_never_logged(caplog, foreign, session_id)


def test_an_attribute_that_does_not_decode_is_logged_with_a_cut_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    middleware = make()
    client = TestClient(middleware)
    session_id = cookie_value(client.post("/update", json={"user": "ann"}))
    (record,) = middleware.manager.store
    bad = Change(record.token, record.last_accessed_at, values={"x": b"\xc1"})
    bad.value_stamps = {"x": middleware.manager.hlc.stamp()}
    middleware.manager.apply(bad, remote=True)
    with caplog.at_level(logging.DEBUG, logger="clustersession"):
        assert client.get("/").json() == {"user": "ann"}
    assert any("does not decode" in r.getMessage() for r in caplog.records)
    assert_never_logged(caplog, session_id)


def test_a_peer_change_that_fails_to_apply_is_logged_with_a_cut_id(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    middleware = make()
    client = TestClient(middleware)
    session_id = cookie_value(client.post("/update", json={"user": "ann"}))
    (record,) = middleware.manager.store

    def failing_apply(change: Change, *, remote: bool) -> None:
        raise RuntimeError("cannot apply")

    monkeypatch.setattr(middleware.manager, "apply", failing_apply)
    change = Change(record.token, record.last_accessed_at, values={})
    with caplog.at_level(logging.DEBUG, logger="clustersession"):
        assert middleware.manager.merge_remote([change], []) == 1
    assert any("could not apply" in r.getMessage() for r in caplog.records)
    assert_never_logged(caplog, session_id)
