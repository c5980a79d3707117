"""What our middleware adds over Starlette's: the session lives on the server."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from clustersession import (
    AttributeEvent,
    ClusterConfig,
    ClusterSessionMiddleware,
    Session,
    SessionListener,
)

from ..support.polling import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def view(request: Request) -> JSONResponse:
    return JSONResponse(request.session)


async def update(request: Request) -> JSONResponse:
    request.session.update(await request.json())
    return JSONResponse(request.session)


def add_to_cart(request: Request) -> JSONResponse:
    request.session.setdefault("cart", [])
    request.session["cart"].append(request.path_params["item"])
    return JSONResponse(request.session)


def nested_in_place(request: Request) -> JSONResponse:
    request.session.get("profile")["visits"] += 1
    return JSONResponse(request.session)


def store_object(request: Request) -> PlainTextResponse:
    try:
        request.session["bad"] = object()
    except TypeError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    return PlainTextResponse("stored")


def info(request: Request) -> JSONResponse:
    session = request.session
    assert isinstance(session, Session)
    return JSONResponse(
        {
            "id": session.id,
            "is_new": session.is_new,
            "created_at": session.created_at,
            "last_accessed_at": session.last_accessed_at,
            "max_inactive_interval": session.max_inactive_interval,
        }
    )


def regenerate(request: Request) -> JSONResponse:
    session = request.session
    assert isinstance(session, Session)
    old = session.id
    session.regenerate_id()
    return JSONResponse({"old": old, "new": session.id})


def invalidate(request: Request) -> PlainTextResponse:
    session = request.session
    assert isinstance(session, Session)
    session.invalidate()
    return PlainTextResponse("bye")


def logout_then_flash(request: Request) -> PlainTextResponse:
    session = request.session
    assert isinstance(session, Session)
    session.invalidate()
    session["flash"] = "logged out"
    return PlainTextResponse("bye")


def set_timeout(request: Request) -> PlainTextResponse:
    session = request.session
    assert isinstance(session, Session)
    session.max_inactive_interval = int(request.path_params["seconds"])
    return PlainTextResponse("ok")


def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def read_only(request: Request) -> JSONResponse:
    return JSONResponse({"has_user": "user" in request.session})


ROUTES = [
    Route("/", view),
    Route("/update", update, methods=["POST"]),
    Route("/cart/{item}", add_to_cart, methods=["POST"]),
    Route("/visit", nested_in_place, methods=["POST"]),
    Route("/bad", store_object, methods=["POST"]),
    Route("/info", info),
    Route("/regenerate", regenerate, methods=["POST"]),
    Route("/invalidate", invalidate, methods=["POST"]),
    Route("/logout-flash", logout_then_flash, methods=["POST"]),
    Route("/timeout/{seconds}", set_timeout, methods=["POST"]),
    Route("/health", health),
    Route("/read-only", read_only),
]


def make(**options: Any) -> tuple[ClusterSessionMiddleware, ClusterSessionMiddleware]:
    options.setdefault("secret_key", "example")
    middleware = ClusterSessionMiddleware(Starlette(routes=ROUTES), **options)
    return middleware, middleware


def cookie_value(response: Any) -> str:
    match = re.match(r"session=([^;]*);", response.headers["set-cookie"])
    assert match is not None
    return match[1]


def test_cookie_carries_only_a_signed_id_with_the_route() -> None:
    app, middleware = make(config=ClusterConfig(jvm_route="node7"), secret_key="example")
    client = TestClient(app)
    response = client.post("/update", json={"user": "alice", "secret": "do-not-leak"})
    value = cookie_value(response)
    assert re.fullmatch(r"[A-Za-z0-9_-]{44}\.node7", value)
    assert "alice" not in response.headers["set-cookie"]
    assert len(middleware.manager.store) == 1
    assert client.get("/info").json()["id"] == value


def test_requests_that_write_nothing_create_no_session() -> None:
    app, middleware = make()
    client = TestClient(app)
    for path in ["/health", "/read-only", "/", "/info"]:
        response = client.get(path)
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
    assert len(middleware.manager.store) == 0


def test_nested_mutations_are_saved_without_reassignment() -> None:
    app, _ = make()
    client = TestClient(app)
    client.post("/cart/apple")
    client.post("/cart/pear")
    assert client.get("/").json() == {"cart": ["apple", "pear"]}

    client.post("/update", json={"profile": {"visits": 0}})
    client.post("/visit")
    client.post("/visit")
    assert client.get("/").json()["profile"] == {"visits": 2}


def test_unserialisable_value_raises_at_once_naming_key_and_type() -> None:
    app, _ = make()
    client = TestClient(app)
    client.post("/update", json={"keep": 1})
    response = client.post("/bad")
    assert response.status_code == 400
    assert "'bad'" in response.text and "object" in response.text
    assert client.get("/").json() == {"keep": 1}


def test_forged_cookie_is_refused_without_a_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    app, middleware = make()
    client = TestClient(app)
    value = cookie_value(client.post("/update", json={"user": "alice"}))
    token = value.partition(".")[0]
    forged = token[:30] + ("A" if token[30] != "A" else "B") + token[31:]
    lookups: list[str] = []
    real_open = middleware.manager.open

    def counting_open(token: str) -> Any:
        lookups.append(token)
        return real_open(token)

    monkeypatch.setattr(middleware.manager, "open", counting_open)
    attacker = TestClient(app, cookies={"session": forged})
    assert attacker.get("/").json() == {}
    assert lookups == []
    assert TestClient(app, cookies={"session": value}).get("/").json() == {"user": "alice"}
    assert len(lookups) == 1


def test_session_api_fields() -> None:
    clock = FakeClock()
    app, middleware = make(max_age=600)
    middleware.manager.clock = clock
    client = TestClient(app)
    first = client.get("/info").json()
    assert first["is_new"] is True
    assert first["max_inactive_interval"] == 600
    assert first["created_at"] == clock.now

    client.post("/update", json={"x": 1})
    created = clock.now
    clock.now += 5
    second = client.get("/info").json()
    assert second["is_new"] is False
    assert second["created_at"] == created
    assert second["last_accessed_at"] == created
    clock.now += 5
    assert client.get("/info").json()["last_accessed_at"] == created + 5


def test_regenerate_id_keeps_data_and_retires_the_old_id() -> None:
    app, middleware = make()
    client = TestClient(app)
    old_value = cookie_value(client.post("/update", json={"user": "alice"}))
    response = client.post("/regenerate")
    ids = response.json()
    assert ids["old"] == old_value
    assert ids["new"] != old_value
    assert cookie_value(response) == ids["new"]
    assert client.get("/").json() == {"user": "alice"}
    assert TestClient(app, cookies={"session": old_value}).get("/").json() == {}
    assert len(middleware.manager.store) == 1


def test_a_request_with_a_retired_id_gets_no_session_and_no_second_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, middleware = make()
    client = TestClient(app)
    old = cookie_value(client.post("/update", json={"user": "alice"}))
    new = client.post("/regenerate").json()["new"]
    in_flight = TestClient(app, cookies={"session": old})
    assert in_flight.get("/").json() == {}  # not the renamed session: fixation defence
    response = in_flight.post("/update", json={"cart": ["x"]})
    assert "set-cookie" not in response.headers  # and no second session
    assert "retired session id" in caplog.text
    assert len(middleware.manager.store) == 1
    assert TestClient(app, cookies={"session": new}).get("/").json() == {"user": "alice"}


def test_invalidate_destroys_the_session_and_clears_the_cookie() -> None:
    app, middleware = make()
    client = TestClient(app)
    value = cookie_value(client.post("/update", json={"user": "alice"}))
    response = client.post("/invalidate")
    assert response.headers["set-cookie"].startswith("session=null; path=/; expires=Thu, 01 Jan")
    assert len(middleware.manager.store) == 0
    assert TestClient(app, cookies={"session": value}).get("/").json() == {}


def test_writing_after_invalidate_starts_a_new_session() -> None:
    app, middleware = make()
    client = TestClient(app)
    old = cookie_value(client.post("/update", json={"user": "alice"}))
    new = cookie_value(client.post("/logout-flash"))
    assert new != old
    assert client.get("/").json() == {"flash": "logged out"}
    assert len(middleware.manager.store) == 1


def test_idle_sessions_expire() -> None:
    clock = FakeClock()
    app, middleware = make(max_age=60)
    middleware.manager.clock = clock
    client = TestClient(app)
    client.post("/update", json={"user": "alice"})
    clock.now += 59
    assert client.get("/").json() == {"user": "alice"}  # an access restarts the idle time
    clock.now += 59
    assert client.get("/").json() == {"user": "alice"}
    clock.now += 60
    assert client.get("/").json() == {}
    assert len(middleware.manager.store) == 0


def test_max_inactive_interval_per_session() -> None:
    clock = FakeClock()
    app, middleware = make(max_age=60)
    middleware.manager.clock = clock
    long_lived, short_lived = TestClient(app), TestClient(app)
    long_lived.post("/update", json={"user": "a"})
    long_lived.post("/timeout/0")  # zero: never expires
    short_lived.post("/update", json={"user": "b"})
    short_lived.post("/timeout/5")
    clock.now += 6
    assert short_lived.get("/").json() == {}
    clock.now += 10**6
    assert long_lived.get("/").json() == {"user": "a"}


def test_background_sweep_removes_expired_sessions_without_a_request() -> None:
    config = ClusterConfig(jvm_route="n1")
    manager = replace(config.manager, max_inactive_interval=1, expiry_sweep_interval=0.05)
    config = replace(config, manager=manager)
    app, middleware = make(config=config)
    with TestClient(app) as client:  # runs lifespan: the sweep starts with the app
        client.post("/update", json={"user": "alice"})
        assert len(middleware.manager.store) == 1
        assert wait_for(lambda: len(middleware.manager.store) == 0, timeout=10)


def test_fastapi_app_switches_by_changing_the_import() -> None:
    api = FastAPI()
    api.add_middleware(ClusterSessionMiddleware, secret_key="example")

    @api.post("/login/{user}")
    def login(user: str, request: FastAPIRequest) -> dict[str, Any]:
        request.session["user"] = user
        return {"ok": True}

    @api.get("/me")
    def me(request: FastAPIRequest) -> dict[str, Any]:
        return {"user": request.session.get("user")}

    client = TestClient(api)
    assert client.get("/me").json() == {"user": None}
    client.post("/login/alice")
    assert client.get("/me").json() == {"user": "alice"}


def test_config_without_secret_key_uses_the_cluster_secret() -> None:
    app, _ = make(
        secret_key=None, config=ClusterConfig(jvm_route="a", secret="cluster-key-0123456789")
    )
    value = cookie_value(TestClient(app).post("/update", json={"k": 1}))
    assert re.fullmatch(r"[A-Za-z0-9_-]{44}\.a", value)


def test_neither_secret_key_nor_config_is_an_error() -> None:
    with pytest.raises(TypeError, match="secret_key"):
        ClusterSessionMiddleware(view)  # type: ignore[arg-type]


def test_max_active_sessions_refuses_a_new_session_and_keeps_serving_the_others() -> None:
    config = ClusterConfig(jvm_route="n1")
    config = replace(config, manager=replace(config.manager, max_active_sessions=2))
    app, middleware = make(config=config, secret_key="example")
    users = [TestClient(app, raise_server_exceptions=False) for _ in range(3)]
    for name, user in zip(("ann", "bob"), users, strict=False):
        assert user.post("/update", json={"user": name}).status_code == 200
    # The third user's first write would start a third session: refused, as Tomcat's
    # getSession(true) refuses (the app sees TooManyActiveSessions, here a 500).
    third = users[2].post("/update", json={"user": "cy"})
    assert third.status_code == 500
    assert "set-cookie" not in third.headers
    assert middleware.manager.rejected_sessions == 1
    assert len(middleware.manager.store) == 2
    # The sessions that exist are still read and written; a request that only reads
    # (no session) is served too.
    assert users[0].post("/update", json={"cart": 1}).json() == {"user": "ann", "cart": 1}
    assert users[2].get("/read-only").json() == {"has_user": False}
    # Once a session ends, a new one can start.
    users[1].post("/invalidate")
    assert users[2].post("/update", json={"user": "cy"}).json() == {"user": "cy"}


def test_too_many_active_sessions_is_an_error_the_app_can_catch() -> None:
    from clustersession import TooManyActiveSessions

    def login(request: Request) -> PlainTextResponse:
        try:
            request.session["user"] = "dan"
        except TooManyActiveSessions:
            return PlainTextResponse("busy, try later", status_code=503)
        return PlainTextResponse("in")

    config = ClusterConfig(jvm_route="n1")
    config = replace(config, manager=replace(config.manager, max_active_sessions=1))
    app = ClusterSessionMiddleware(
        Starlette(routes=[Route("/login", login)]), secret_key="example", config=config
    )
    assert TestClient(app).get("/login").text == "in"
    response = TestClient(app).get("/login")
    assert (response.status_code, response.text) == (503, "busy, try later")


def test_a_value_that_does_not_decode_is_left_out_and_the_session_still_serves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Only a peer with another codec (or a bug) can store such bytes: values set
    # here are checked when set. The rest of the session must stay usable.
    from clustersession.sessions.change import Change

    app, middleware = make()
    client = TestClient(app)
    client.post("/update", json={"user": "ann"})
    (record,) = middleware.manager.store
    stamp = middleware.manager.hlc.stamp()
    bad = Change(record.token, record.last_accessed_at, values={"x": b"\xc1"})
    bad.value_stamps = {"x": stamp}
    middleware.manager.apply(bad, remote=True)
    with caplog.at_level("ERROR", logger="clustersession"):
        assert client.get("/").json() == {"user": "ann"}
    assert "attribute 'x' does not decode" in caplog.text
    assert client.post("/update", json={"cart": 1}).json() == {"user": "ann", "cart": 1}


@pytest.mark.anyio
async def test_an_empty_response_goes_out_only_after_its_commit() -> None:
    # Content-Length 0 completes a response with its headers: they must wait for the
    # commit too, or a client could read another node before the change is there.
    order: list[str] = []

    class Committed(SessionListener):
        def attribute_added(self, event: AttributeEvent) -> None:
            order.append("committed")

    async def empty(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["k"] = "v"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = ClusterSessionMiddleware(empty, secret_key="s", listeners=[Committed()])
    scope = {"type": "http", "path": "/", "headers": [], "method": "POST"}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        order.append(message["type"])

    await middleware(scope, receive, send)
    assert order == ["committed", "http.response.start", "http.response.body"]


def test_values_that_cannot_change_are_decoded_once_per_stored_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A str or int decoded by a request is shared by the next requests of the session, until
    a write replaces it; lists are decoded for every request (each may change its own). A
    session read once keeps nothing (what many sessions read once would cost): from its
    second read on.
    """
    from clustersession.sessions import codec

    decoded: list[object] = []
    real_decode = codec.decode

    def counting_decode(data: bytes) -> Any:
        value = real_decode(data)
        decoded.append(value)
        return value

    def read(request: Request) -> JSONResponse:
        session = request.session
        return JSONResponse([session["name"], session["n"], session["cart"]])

    def write(request: Request) -> JSONResponse:
        request.session["n"] = request.session["n"] + 1
        return JSONResponse("ok")

    app = Starlette(routes=[Route("/read", read), Route("/write", write), *ROUTES])
    with TestClient(ClusterSessionMiddleware(app, secret_key="example")) as client:
        client.post("/update", json={"name": "ada", "n": 1, "cart": ["a"]})
        monkeypatch.setattr(codec, "decode", counting_decode)
        for _ in range(2):  # the first read keeps nothing, the second keeps name and n
            decoded.clear()
            assert client.get("/read").json() == ["ada", 1, ["a"]]
            assert sorted(map(repr, decoded)) == ["'ada'", "1", "['a']"]
        decoded.clear()
        assert client.get("/read").json() == ["ada", 1, ["a"]]
        assert decoded == [["a"]]  # the list only
        decoded.clear()
        client.get("/write")
        assert decoded == []  # n is shared too
        assert client.get("/read").json() == ["ada", 2, ["a"]]
        assert sorted(map(repr, decoded)) == ["2", "['a']"]  # n changed; name is still shared
