"""The node: log in and write behind our middleware, plus what the bench asks.

Served by uvicorn as ``bench.scaling.app:create_app --factory``, configured by the
``CLUSTERSESSION_*`` environment (``manager.kind`` included).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from bench.wrk import realistic_session, sized_session
from clustersession import ClusterConfig, ClusterSessionMiddleware
from clustersession.sessions import codec
from clustersession.sessions.ids import SessionIds
from clustersession.sessions.record import SessionDelta

SECRET: Final = "bench-scaling-secret-not-for-production"
BATCH: Final = 500  # sessions per commit; the loop runs between batches, as between requests


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def session_values(i: int, size: int | None = None) -> dict[str, Any]:
    """A logged-in user's session, different for every ``i``: the realistic one
    (about 400 B encoded), or with ``size``, ten values of about ``size`` bytes in all."""
    values = realistic_session() if size is None else sized_session(10, size)
    values["user_id"] = i
    values["email"] = f"user{i}@example.com"
    return values


class Node:
    """The routes of one node; ``middleware`` is set once it is built."""

    def __init__(self) -> None:
        self.middleware: ClusterSessionMiddleware | None = None
        self.writes = 0

    @property
    def manager(self) -> Any:
        assert self.middleware is not None
        return self.middleware.manager

    async def login(self, request: Request) -> PlainTextResponse:
        request.session.update(realistic_session())
        return PlainTextResponse("ok")

    async def write(self, request: Request) -> JSONResponse:
        session = request.session
        session["counter"] = session.get("counter", 0) + 1
        self.writes += 1
        return JSONResponse({"counter": session["counter"]})

    async def bulk(self, request: Request) -> JSONResponse:
        """Create ``n`` sessions here (``start`` numbers them), as ``n`` logins would;
        ``size``: their values' bytes (:func:`session_values`). Answers the encoded bytes."""
        n, start = int(request.query_params["n"]), int(request.query_params["start"])
        size = int(request.query_params["size"]) if "size" in request.query_params else None
        encoded_bytes = 0
        manager = self.manager
        ids = SessionIds(SECRET, manager.channel.local.route)
        route = manager.channel.local.route
        began = time.perf_counter()
        for first in range(start, start + n, BATCH):
            now = time.time()
            batch = []
            for i in range(first, min(first + BATCH, start + n)):
                encoded = {k: codec.encode(v) for k, v in session_values(i, size).items()}
                encoded_bytes += sum(len(k) + len(v) for k, v in encoded.items())
                batch.append(SessionDelta(ids.new_token(), route, now, created_at=now, set=encoded))
            await manager.commit(batch)
            await asyncio.sleep(0)
        seconds = time.perf_counter() - began
        return JSONResponse({"created": n, "seconds": seconds, "encoded_bytes": encoded_bytes})

    async def stats(self, request: Request) -> JSONResponse:
        view = self.manager.view()
        sent = sum(p.bytes_sent for p in view.channel.peers.values()) if view.channel else 0
        body: dict[str, Any] = {
            "sessions": view.sessions,
            "members": len(view.members),
            "bytes_sent": sent,
            "writes": self.writes,
            "rss_kb": rss_kb(),
            "roles": dataclasses.asdict(view.roles) if view.roles else None,
        }
        return JSONResponse(body)


def create_app() -> ASGIApp:
    """uvicorn ``--factory`` entry: the cluster node the environment describes."""
    node = Node()
    app = Starlette(
        routes=[
            Route("/login", node.login),
            Route("/write", node.write),
            Route("/bench/bulk", node.bulk),
            Route("/bench/stats", node.stats),
        ]
    )
    node.middleware = ClusterSessionMiddleware(app, config=ClusterConfig.from_env())
    return node.middleware
