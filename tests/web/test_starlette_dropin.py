"""Starlette's own SessionMiddleware scenarios, run against both middlewares.

Each scenario of Starlette's tests/middleware/test_session.py is restated here and
run twice: with Starlette's SessionMiddleware (the reference) and with ours. Same
assertions, so a difference in behaviour fails one of the two.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from clustersession import ClusterSessionMiddleware


@pytest.fixture(params=[SessionMiddleware, ClusterSessionMiddleware], ids=["starlette", "ours"])
def middleware_class(request: pytest.FixtureRequest) -> Any:
    return request.param


def view_session(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.session})


async def update_session(request: Request) -> JSONResponse:
    request.session.update(await request.json())
    return JSONResponse({"session": request.session})


async def inplace_update_session(request: Request) -> JSONResponse:
    session = request.session
    session |= await request.json()
    return JSONResponse({"session": request.session})


async def popitem_session(request: Request) -> JSONResponse:
    request.session.popitem()
    return JSONResponse({"session": request.session})


async def clear_session(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({"session": request.session})


async def pop_session(request: Request) -> JSONResponse:
    return JSONResponse({"value": request.scope["session"].pop("a")})


def no_session_access(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


ROUTES = [
    Route("/view_session", endpoint=view_session),
    Route("/update_session", endpoint=update_session, methods=["POST"]),
    Route("/inplace_update_session", endpoint=inplace_update_session, methods=["POST"]),
    Route("/popitem_session", endpoint=popitem_session, methods=["POST"]),
    Route("/clear_session", endpoint=clear_session, methods=["POST"]),
    Route("/pop_session", endpoint=pop_session, methods=["POST"]),
    Route("/no_session", endpoint=no_session_access),
]


def make_app(middleware_class: Any, **options: Any) -> Starlette:
    return Starlette(
        routes=ROUTES, middleware=[Middleware(middleware_class, secret_key="example", **options)]
    )


def test_write_read_clear_and_max_age(middleware_class: Any) -> None:
    client = TestClient(make_app(middleware_class))
    assert client.get("/view_session").json() == {"session": {}}

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}
    max_age = re.search(r"; Max-Age=([0-9]+);", response.headers["set-cookie"])
    assert max_age is not None and int(max_age[1]) == 14 * 24 * 3600

    assert client.get("/view_session").json() == {"session": {"some": "data"}}
    assert client.post("/clear_session").json() == {"session": {}}
    assert client.get("/view_session").json() == {"session": {}}


@pytest.mark.parametrize("partitioned", [False, True])
def test_partitioned_flag_on_set_and_clear(middleware_class: Any, partitioned: bool) -> None:
    app = make_app(middleware_class, https_only=True, same_site="none", partitioned=partitioned)
    client = TestClient(app, base_url="https://testserver")
    response = client.post("/update_session", json={"some": "data"})
    assert ("partitioned" in response.headers["set-cookie"].split("; ")) is partitioned
    response = client.post("/clear_session")
    assert ("partitioned" in response.headers["set-cookie"].split("; ")) is partitioned


def test_negative_max_age_means_the_cookie_is_already_expired(middleware_class: Any) -> None:
    app = make_app(middleware_class, max_age=-1)
    response = TestClient(app).post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}
    # The client drops an expired cookie; send it back by hand.
    match = re.search(r"session=([^;]*);", response.headers["set-cookie"])
    assert match is not None
    client = TestClient(app, cookies={"session": match[1]})
    assert client.get("/view_session").json() == {"session": {}}


def test_https_only_cookie_is_not_sent_over_http(middleware_class: Any) -> None:
    app = make_app(middleware_class, https_only=True)
    secure = TestClient(app, base_url="https://testserver")
    plain = TestClient(app, base_url="http://testserver")

    assert plain.get("/view_session").json() == {"session": {}}
    assert plain.post("/update_session", json={"some": "data"}).json() == {
        "session": {"some": "data"}
    }
    assert plain.get("/view_session").json() == {"session": {}}

    assert secure.get("/view_session").json() == {"session": {}}
    secure.post("/update_session", json={"some": "data"})
    assert secure.get("/view_session").json() == {"session": {"some": "data"}}
    assert secure.post("/clear_session").json() == {"session": {}}
    assert secure.get("/view_session").json() == {"session": {}}


def test_cookie_path(middleware_class: Any) -> None:
    inner = Starlette(
        routes=ROUTES,
        middleware=[Middleware(middleware_class, secret_key="example", path="/second_app")],
    )
    app = Starlette(routes=[Mount("/second_app", app=inner)])
    client = TestClient(app, base_url="http://testserver/second_app")
    response = client.post("/update_session", json={"some": "data"})
    assert response.status_code == 200
    path = re.search(r"; path=(\S+);", response.headers["set-cookie"])
    assert path is not None and path[1] == "/second_app"


@pytest.mark.parametrize("bogus", ["invalid", "", "a.b.c", "null", "x" * 5000, "é"])
def test_bogus_cookie_gives_an_empty_session(middleware_class: Any, bogus: str) -> None:
    app = make_app(middleware_class)
    TestClient(app).post("/update_session", json={"some": "data"})
    client = TestClient(app, headers={"cookie": b"session=" + bogus.encode()})
    response = client.get("/view_session")
    assert response.status_code == 200
    assert response.json() == {"session": {}}


def test_no_max_age_gives_a_browser_session_cookie(middleware_class: Any) -> None:
    client = TestClient(make_app(middleware_class, max_age=None))
    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}
    assert "Max-Age" not in response.headers["set-cookie"]
    assert client.get("/view_session").json() == {"session": {"some": "data"}}
    client.cookies.delete("session")
    assert client.get("/view_session").json() == {"session": {}}


def test_domain(middleware_class: Any) -> None:
    client = TestClient(make_app(middleware_class, domain=".example.com"))
    response = client.post("/update_session", json={"some": "data"})
    assert "domain=.example.com" in response.headers["set-cookie"]
    client.cookies.delete("session")
    assert client.get("/view_session").json() == {"session": {}}


def test_set_cookie_only_on_modification(middleware_class: Any) -> None:
    client = TestClient(make_app(middleware_class))
    assert "set-cookie" in client.post("/update_session", json={"some": "data"}).headers
    response = client.get("/view_session")
    assert response.json() == {"session": {"some": "data"}}
    assert "set-cookie" not in response.headers


def test_vary_cookie_only_when_the_session_is_used(middleware_class: Any) -> None:
    client = TestClient(make_app(middleware_class))
    response = client.post("/update_session", json={"some": "data"})
    assert "cookie" in response.headers.get("vary", "").lower()
    assert "cookie" in client.get("/view_session").headers.get("vary", "").lower()
    assert "cookie" not in client.get("/no_session").headers.get("vary", "").lower()


@pytest.mark.anyio
@pytest.mark.parametrize("data", [{"a": "1"}, {"a": "1", "b": "2"}])
async def test_pop_sets_cookie_and_vary(middleware_class: Any, data: dict[str, str]) -> None:
    transport = httpx.ASGITransport(make_app(middleware_class))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/update_session", json=data)).json() == {"session": data}
        response = await client.post("/pop_session")
        assert response.json() == {"value": "1"}
        assert "set-cookie" in response.headers
        assert "cookie" in response.headers.get("vary", "").lower()
        rest = {k: v for k, v in data.items() if k != "a"}
        assert (await client.get("/view_session")).json() == {"session": rest}


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        ("/inplace_update_session", {"c": "3"}, {"a": "1", "b": "2", "c": "3"}),
        ("/popitem_session", None, {"a": "1"}),
    ],
)
def test_mutations_persist(
    middleware_class: Any, path: str, data: dict[str, str] | None, expected: dict[str, str]
) -> None:
    client = TestClient(make_app(middleware_class))
    client.post("/update_session", json={"a": "1", "b": "2"})
    assert client.post(path, json=data).json() == {"session": expected}
    assert client.get("/view_session").json() == {"session": expected}
