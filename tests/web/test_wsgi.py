"""The WSGI middleware: the ASGI middleware's sessions, for a plain WSGI app, in process."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from clustersession import AttributeEvent, ClusterConfig, Session, SessionListener
from clustersession.wsgi import ENVIRON_KEY, ClusterSessionWSGIMiddleware

SECRET = "wsgi-test-secret"


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A WSGI app: /set?k=v, /append?k=v, /get, /bad, /invalidate, /regenerate, /stream."""
    session: Session = environ[ENVIRON_KEY]
    path, query = environ["PATH_INFO"], environ.get("QUERY_STRING", "")
    key, _, value = query.partition("=")
    status, body = "200 OK", b""
    if path == "/set":
        session[key] = value
    elif path == "/append":
        session.setdefault("items", [])
        session["items"].append(value)  # in place: saved without reassignment
    elif path == "/bad":
        try:
            session["bad"] = object()
        except TypeError as exc:
            status, body = "400 Bad Request", str(exc).encode()
    elif path == "/invalidate":
        session.invalidate()
    elif path == "/regenerate":
        session.regenerate_id()
    elif path == "/stream":
        session["streamed"] = True
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one ", b"two"])
    if not body:
        body = json.dumps({"id": session.id if session else None, **session}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Vary", "Accept")])
    return [body]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    middleware = ClusterSessionWSGIMiddleware(app, secret_key=SECRET)
    with httpx.Client(transport=httpx.WSGITransport(app=middleware), base_url="http://t") as c:
        yield c
    middleware.manager.stop()


def test_a_write_is_read_back_and_the_cookie_holds_only_the_id(client: httpx.Client) -> None:
    first = client.get("/set?colour=blue")
    assert first.json()["colour"] == "blue"
    cookie = first.headers["set-cookie"]
    assert "blue" not in cookie and cookie.startswith("session=")
    assert first.headers["vary"] == "Accept, Cookie"
    again = client.get("/get")
    assert again.json() == {"id": first.json()["id"], "colour": "blue"}
    assert "set-cookie" not in again.headers


def test_same_cookie_attributes_as_the_asgi_middleware(client: httpx.Client) -> None:
    from clustersession import ClusterSessionMiddleware

    def write(request: Request) -> PlainTextResponse:
        request.session["x"] = 1
        return PlainTextResponse("")

    asgi = Starlette(
        routes=[Route("/", write)],
        middleware=[Middleware(ClusterSessionMiddleware, secret_key=SECRET)],
    )
    with TestClient(asgi) as asgi_client:
        theirs = asgi_client.get("/").headers["set-cookie"]
    ours = client.get("/set?x=1").headers["set-cookie"]
    assert ours.split(";", 1)[1] == theirs.split(";", 1)[1]


def test_no_write_no_session_and_no_cookie(client: httpx.Client) -> None:
    response = client.get("/get")
    assert response.json() == {"id": None}
    assert "set-cookie" not in response.headers


def test_nested_changes_are_saved(client: httpx.Client) -> None:
    client.get("/append?items=a")
    assert client.get("/append?items=b").json()["items"] == ["a", "b"]


def test_an_unserialisable_value_names_key_and_type(client: httpx.Client) -> None:
    response = client.get("/bad")
    assert response.status_code == 400
    assert "'bad'" in response.text and "object" in response.text


@pytest.mark.parametrize(
    "cookie", ["garbage", "a" * 5000, "x.y.z", "AAAAAAAAAAAAAAAAAAAAAA.node1", ""]
)
def test_a_bogus_cookie_gives_an_empty_session(client: httpx.Client, cookie: str) -> None:
    response = client.get("/get", headers={"cookie": f"session={cookie}"})
    assert response.status_code == 200 and response.json() == {"id": None}


def test_invalidate_clears_the_cookie_and_the_old_id_stays_dead(client: httpx.Client) -> None:
    old = client.get("/set?k=v").headers["set-cookie"].split(";")[0]
    cleared = client.get("/invalidate")
    assert "expires=Thu, 01 Jan 1970" in cleared.headers["set-cookie"]
    client.cookies.clear()
    replay = client.get("/set?k=again", headers={"cookie": old})
    assert "set-cookie" not in replay.headers  # a retired id starts nothing
    assert client.get("/get", headers={"cookie": old}).json() == {"id": None}


def test_regenerate_id_moves_the_data_and_retires_the_old_id(client: httpx.Client) -> None:
    first = client.get("/set?k=v")
    old_cookie = first.headers["set-cookie"].split(";")[0]
    renamed = client.get("/regenerate")
    assert renamed.json()["id"] != first.json()["id"] and renamed.json()["k"] == "v"
    client.cookies.clear()
    assert client.get("/get", headers={"cookie": old_cookie}).json() == {"id": None}


class Events(SessionListener):
    def __init__(self) -> None:
        self.added: list[str] = []

    def attribute_added(self, event: AttributeEvent) -> None:
        self.added.append(event.name)


def _environ(path: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "wsgi.input": None}


def test_changes_are_committed_before_the_last_chunk_goes_out() -> None:
    events = Events()
    middleware = ClusterSessionWSGIMiddleware(app, secret_key=SECRET, listeners=[events])
    try:
        statuses: list[str] = []
        result = middleware(_environ("/stream"), lambda s, h, e=None: statuses.append(s))
        chunks = iter(result)
        assert next(chunks) == b"one "
        middleware.manager.flush()
        assert events.added == []  # the app is not done yet
        assert next(chunks) == b"two"
        middleware.manager.flush()  # async mode: queued, not waited for
        assert events.added == ["streamed"]  # committed before the last chunk
        result.close()  # type: ignore[attr-defined]
        middleware.manager.flush()
        assert events.added == ["streamed"]  # once
    finally:
        middleware.manager.stop()


def test_a_response_closed_early_still_commits() -> None:
    events = Events()
    middleware = ClusterSessionWSGIMiddleware(app, secret_key=SECRET, listeners=[events])
    try:
        result = middleware(_environ("/stream"), lambda s, h, e=None: None)
        result.close()  # type: ignore[attr-defined]
        middleware.manager.flush()
        assert events.added == ["streamed"]
    finally:
        middleware.manager.stop()


def test_the_status_page_answers_loopback_clients_only() -> None:
    base = ClusterConfig(secret=SECRET)
    status = replace(base.valves.status, path="/cluster-status")
    config = replace(base, valves=replace(base.valves, status=status))
    middleware = ClusterSessionWSGIMiddleware(app, config=config)
    try:
        local = httpx.WSGITransport(app=middleware, remote_addr="127.0.0.1")
        remote = httpx.WSGITransport(app=middleware, remote_addr="10.1.2.3")
        with httpx.Client(transport=local, base_url="http://t") as c:
            data = c.get(config.valves.status.path + ".json").json()
            assert data["distributable"] is False and data["sessions"] == 0
        with httpx.Client(transport=remote, base_url="http://t") as c:
            assert c.get(config.valves.status.path + ".json").status_code == 403
    finally:
        middleware.manager.stop()


def test_the_status_page_takes_the_token_as_a_bearer_header_or_query() -> None:
    base = ClusterConfig(secret=SECRET)
    status = replace(base.valves.status, path="/cluster-status", token="s3cret-token")
    config = replace(base, valves=replace(base.valves, status=status))
    middleware = ClusterSessionWSGIMiddleware(app, config=config)
    try:
        remote = httpx.WSGITransport(app=middleware, remote_addr="10.1.2.3")
        with httpx.Client(transport=remote, base_url="http://t") as c:
            assert c.get("/cluster-status.json").status_code == 403
            bearer = {"Authorization": "Bearer s3cret-token"}
            assert c.get("/cluster-status.json", headers=bearer).json()["sessions"] == 0
            wrong = {"Authorization": "Bearer wrong"}
            assert c.get("/cluster-status.json", headers=wrong).status_code == 403
            assert c.get("/cluster-status.json?token=s3cret-token").status_code == 200
    finally:
        middleware.manager.stop()


def test_admin_and_the_per_principal_limit_on_plain_wsgi() -> None:
    base = ClusterConfig(secret=SECRET)
    limits = replace(base.manager, principal_attribute="user", max_sessions_per_principal=2)
    middleware = ClusterSessionWSGIMiddleware(app, config=replace(base, manager=limits))
    transport = httpx.WSGITransport(app=middleware)
    try:
        cookies = []
        for user in ("ann", "ann", "bob", "ann"):  # ann's third login evicts her first
            with httpx.Client(transport=transport, base_url="http://t") as browser:
                assert browser.get(f"/set?user={user}").status_code == 200
                cookies.append(browser.cookies["session"])
        first, second, bob, third = cookies
        admin = middleware.admin
        assert [info.id for info in admin.sessions_of("ann")] == [third, second]
        assert admin.get(first) is None and admin.count() == 3
        bob_info = admin.get(bob)
        assert bob_info is not None and bob_info.principal == "bob"
        assert admin.invalidate_principal("ann") == 2
        assert admin.sessions_of("ann") == [] and admin.count() == 1
        assert admin.invalidate(bob) is True and admin.invalidate(bob) is False
        assert admin.status()["route"] == base.jvm_route
        with httpx.Client(transport=transport, base_url="http://t") as browser:
            browser.cookies.set("session", third)
            assert browser.get("/get").json() == {"id": None}  # logged out
    finally:
        middleware.manager.stop()
