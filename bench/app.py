"""The session endpoints both benchmarks serve: a readiness probe, log in, read, write."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from bench.wrk import realistic_session, sized_session

# The session-size scenario: a read of three keys of a small and of a large session.
SMALL_KEYS, SMALL_BYTES = 5, 5 * 64
LARGE_KEYS, LARGE_BYTES = 200, 64 * 1024

SessionOf = Callable[[Request], MutableMapping[str, Any]]


def session_routes(session_of: SessionOf) -> list[Route]:
    """``/ping``, ``/login``, ``/read``, ``/write`` on whatever ``session_of`` returns.

    ``session_of`` is ``request.session`` behind a session middleware, or a plain dict
    where the overhead benchmark measures the same work without one.
    """

    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("pong")  # the readiness probe: leaves the session alone

    async def login(request: Request) -> PlainTextResponse:
        session_of(request).update(realistic_session())
        return PlainTextResponse("ok")

    async def read(request: Request) -> JSONResponse:
        session = session_of(request)
        return JSONResponse(
            {
                "user": session["display_name"],
                "admin": "admin" in session["roles"],
                "items": len(session["cart"]),
            }
        )

    async def write(request: Request) -> JSONResponse:
        session = session_of(request)
        session["counter"] = session.get("counter", 0) + 1
        return JSONResponse({"user_id": session["user_id"], "counter": session["counter"]})

    async def login_small(request: Request) -> PlainTextResponse:
        session_of(request).update(sized_session(SMALL_KEYS, SMALL_BYTES))
        return PlainTextResponse("ok")

    async def login_large(request: Request) -> PlainTextResponse:
        session_of(request).update(sized_session(LARGE_KEYS, LARGE_BYTES))
        return PlainTextResponse("ok")

    async def read_keys(request: Request) -> JSONResponse:
        session = session_of(request)
        return JSONResponse({key: len(session[key]) for key in ("k0", "k1", "k2")})

    return [
        Route("/ping", ping),
        Route("/login-small", login_small),
        Route("/login-large", login_large),
        Route("/read-small", read_keys),
        Route("/read-large", read_keys),
        Route("/login", login),
        Route("/read", read),
        Route("/write", write),
    ]
