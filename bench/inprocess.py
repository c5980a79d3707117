"""CPU per request, in process: the bench app called through ASGI, no server, no sockets.

On a shared machine wrk's requests/s swing by tens of percent between identical
runs; this measures what the middleware itself costs. The variants run
interleaved in one process, in batches of 10 requests, and each reports the
fastest batch (the one least disturbed by other processes)::

    python -m bench.inprocess            # /read and /write: none, starlette, ours
    python -m bench.inprocess --alone    # the middleware around a bare ASGI app

``none`` is the same app with a plain dict for a session; ``--alone`` puts the
middleware around an app that only touches the session and answers, so the
figure is the middleware's own cost, without Starlette's routing and responses.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware

from bench.app import session_routes
from bench.wrk import realistic_session
from clustersession import ClusterSessionMiddleware

SECRET = "s" * 32
BATCH = 10
Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_HEADERS = [(b"host", b"x"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]


def build(variant: str) -> Asgi:
    """The bench app without a session middleware, behind Starlette's, or behind ours."""
    if variant == "none":
        shared = realistic_session()
        return Starlette(routes=session_routes(lambda request: shared))
    middleware = SessionMiddleware if variant == "starlette" else ClusterSessionMiddleware
    return Starlette(
        routes=session_routes(lambda request: request.session),
        middleware=[Middleware(middleware, secret_key=SECRET)],
    )


async def call(app: Asgi, path: str, cookie: bytes | None) -> list[dict[str, Any]]:
    """One GET through the app; the messages it sent."""
    headers = [*_HEADERS, (b"cookie", cookie)] if cookie else list(_HEADERS)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def log_in(app: Asgi) -> bytes | None:
    """The session cookie /login sets (``None`` without a middleware)."""
    for name, value in (await call(app, "/login", None))[0]["headers"]:
        if name == b"set-cookie":
            return bytes(value).split(b";")[0]
    return None


async def fastest(
    runs: dict[str, Callable[[], Awaitable[object]]], batches: int
) -> dict[str, float]:
    """Microseconds per call of each run: its fastest batch, the runs interleaved."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(batches):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(BATCH):
                await run()
            best[name] = min(best[name], (time.perf_counter() - start) / BATCH * 1e6)
    return best


async def whole_app(paths: list[str], batches: int) -> None:
    apps = {variant: build(variant) for variant in ("none", "starlette", "ours")}
    cookies = {variant: await log_in(app) for variant, app in apps.items()}
    for path in paths:
        runs = {v: (lambda v=v, path=path: call(apps[v], path, cookies[v])) for v in apps}
        best = await fastest(runs, batches)  # type: ignore[arg-type]
        print(f"{path}: " + " ".join(f"{v}={us:.1f}us" for v, us in best.items())
              + f"  ours added {best['ours'] - best['none']:.1f}us,"
              f" none/ours {best['none'] / best['ours']:.2f}")  # fmt: skip


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that touches the session as /read or /write do, and answers 10 bytes."""
    session = scope.get("session")
    if session is not None and scope["path"] == "/read":
        session["display_name"], session["roles"], session["cart"]
    elif session is not None and scope["path"] == "/write":
        session["counter"] = session.get("counter", 0) + 1
        session["user_id"]
    headers = [(b"content-length", b"10"), (b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"0123456789"})


async def alone(paths: list[str], batches: int) -> None:
    app = build("ours")
    cookie = await log_in(app)
    middleware = ClusterSessionMiddleware(bare, secret_key=SECRET)
    # The session /login made, in the middleware that runs alone: same cookie, same data.
    inner: Any = app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(inner, ClusterSessionMiddleware):
        inner = inner.app
    middleware.manager = inner.manager
    for path in paths:
        runs = {
            "bare": lambda path=path: call(bare, path, cookie),
            "middleware": lambda path=path: call(middleware, path, cookie),
        }
        best = await fastest(runs, batches)  # type: ignore[arg-type]
        print(f"{path}: bare={best['bare']:.1f}us middleware={best['middleware']:.1f}us"
              f"  added {best['middleware'] - best['bare']:.1f}us")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alone", action="store_true", help="the middleware around a bare app")
    parser.add_argument("--batches", type=int, default=1500)
    parser.add_argument("paths", nargs="*", default=["/read", "/write"])
    args = parser.parse_args()
    asyncio.run((alone if args.alone else whole_app)(args.paths, args.batches))


if __name__ == "__main__":
    main()
