"""The node every figure measures: ``bench.app``'s endpoints behind our middleware.

Served by uvicorn as ``bench.cluster.app:create_app --factory`` (standalone or a
cluster node, from the environment), or built in-process with :func:`build_app`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bench.app import session_routes
from clustersession import (
    AttributeEvent,
    ClusterConfig,
    ClusterSessionMiddleware,
    SessionListener,
)
from clustersession.sessions.delta_manager import DeltaManager

SECRET: Final = "bench-cluster-secret-not-for-production"
MODE_ENV: Final = "BENCH_MODE"  # "standalone" | "cluster"
RECORD_ENV: Final = "BENCH_RECORD"  # "1": node2 records when counter values arrive


class ArrivalRecorder(SessionListener):
    """Records when each replicated ``counter`` value is applied on this node."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}

    def _seen(self, event: AttributeEvent) -> None:
        if event.remote and event.name == "counter" and isinstance(event.value, int):
            self.arrivals.setdefault(event.value, time.perf_counter())

    attribute_added = _seen
    attribute_replaced = _seen


def _node_routes(
    middleware: Callable[[], ClusterSessionMiddleware], recorder: ArrivalRecorder | None
) -> list[Route]:
    """What the benchmark asks a node besides the session endpoints."""

    async def counter(request: Request) -> JSONResponse:
        return JSONResponse({"counter": request.session.get("counter")})

    async def stats(request: Request) -> Response:
        view = middleware().manager.view()
        body: dict[str, Any] = {"sessions": view.sessions, "members": len(view.members)}
        if view.replication is not None:
            body.update(dataclasses.asdict(view.replication.counters))
        if view.channel is not None:  # DELTA messages: deltas_sent / this = changes per message
            body["messages_sent"] = sum(p.messages_sent for p in view.channel.peers.values())
            acks = view.channel.ack_latency
            if acks is not None:  # every ACK round trip so far: count and total seconds
                body["acks"], body["ack_seconds"] = acks.count, acks.sum
        return Response(json.dumps(body, default=str), media_type="application/json")

    async def arrivals(request: Request) -> JSONResponse:
        return JSONResponse(sorted(recorder.arrivals.items()) if recorder else [])

    return [
        Route("/bench/counter", counter),
        Route("/bench/stats", stats),
        Route("/bench/arrivals", arrivals),
    ]


def build_app(config: ClusterConfig | None, *, record: bool = False) -> ClusterSessionMiddleware:
    """The benchmark app behind our middleware: standalone without ``config``."""
    recorder = ArrivalRecorder() if record else None
    holder: list[ClusterSessionMiddleware] = []
    routes = session_routes(lambda request: request.session)
    app = Starlette(routes=routes + _node_routes(lambda: holder[0], recorder))
    listeners = [recorder] if recorder else []
    if config is None:
        middleware = ClusterSessionMiddleware(app, secret_key=SECRET, listeners=listeners)
    else:
        middleware = ClusterSessionMiddleware(app, config=config, listeners=listeners)
    holder.append(middleware)
    return middleware


def create_app() -> ASGIApp:
    """uvicorn ``--factory`` entry: ``$BENCH_MODE`` standalone, or cluster from the env."""
    mode = os.environ.get(MODE_ENV, "")
    if mode not in ("standalone", "cluster"):
        raise RuntimeError(f"${MODE_ENV} must be 'standalone' or 'cluster', got {mode!r}")
    config = ClusterConfig.from_env() if mode == "cluster" else None
    return build_app(config, record=os.environ.get(RECORD_ENV) == "1")


def delta_manager(app: ClusterSessionMiddleware) -> DeltaManager:
    """The node's manager, which is a ``DeltaManager`` whenever it is clustered."""
    manager = app.manager
    assert isinstance(manager, DeltaManager)
    return manager


def recorder_of(app: ClusterSessionMiddleware) -> ArrivalRecorder:
    """The arrival recorder of an app built with ``record=True``."""
    (recorder,) = app.manager.listeners
    assert isinstance(recorder, ArrivalRecorder)
    return recorder
