"""Fuzzing what a client reaches: the Cookie header, the session id in it, the whole request.

Property: reading a cookie and parsing an id never raise (a bad one is no session),
and a request carrying any cookie header is answered, with a new session at most.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clustersession import ClusterSessionMiddleware
from clustersession.sessions.ids import SessionIds
from clustersession.web.cookies import SessionCookie

from .strategies import mutated

SECRET = "fuzz-secret-0123456789"
IDS = SessionIds(SECRET, "node1")
VALID = IDS.full_id(IDS.new_token())


def _cookie_headers() -> st.SearchStrategy[bytes]:
    valid = st.just(f"session={VALID}".encode())
    return (
        st.binary(max_size=200)
        | mutated(valid)
        | st.builds(lambda v: b"a=1; session=" + v + b"; b=2", st.binary(max_size=80))
        | st.builds(lambda v: b'session="' + v.encode("utf-8", "replace") + b'"', st.text())
    )


@given(st.lists(st.tuples(st.sampled_from([b"cookie", b"host", b"x"]), _cookie_headers()),
                max_size=4))  # fmt: skip
def test_reading_the_cookie(headers: list[tuple[bytes, bytes]]) -> None:
    value = SessionCookie("session").read(headers)
    assert value is None or isinstance(value, str)


def _first_named(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The cookie as RFC 6265 reads it: the first ``name=value`` pair of the Cookie headers."""
    for key, value in headers:
        if key == b"cookie":
            for pair in value.split(b";"):
                pair_name, equals, pair_value = pair.partition(b"=")
                if equals and pair_name.strip() == name:
                    return pair_value.strip().strip(b'"').decode("latin-1")
    return None


@given(st.lists(st.tuples(st.sampled_from([b"cookie", b"host"]), _cookie_headers()), max_size=3))
def test_the_cookie_read_is_the_first_one_named_session(headers: list[tuple[bytes, bytes]]) -> None:
    # Whether ours comes first in the header (read without splitting it) or later.
    assert SessionCookie("session").read(headers) == _first_named(headers, b"session")


@given(st.text(max_size=120) | mutated(st.just(VALID.encode())).map(lambda b: b.decode("latin-1")))
def test_parsing_an_id(value: str) -> None:
    parsed = IDS.parse(value)
    if parsed is not None:
        token, _route = parsed
        assert value.startswith(token) and len(token) == 44


async def _view(request: Request) -> JSONResponse:
    request.session["seen"] = request.session.get("seen", 0) + 1
    return JSONResponse(dict(request.session))


APP = ClusterSessionMiddleware(Starlette(routes=[Route("/", _view)]), secret_key=SECRET)


def _request(cookie_header: bytes) -> tuple[int, list[Any]]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test"), (b"cookie", cookie_header)],
             "client": ("127.0.0.1", 1), "server": ("test", 80)}  # fmt: skip
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(APP(scope, receive, send))
    return sent[0]["status"], sent


@given(_cookie_headers())
def test_any_cookie_header_is_answered(cookie_header: bytes) -> None:
    status, sent = _request(cookie_header)
    assert status == 200
    assert b'"seen":1' in sent[-1]["body"]  # never someone else's session
