"""The app the cluster tests serve with uvicorn: sessions, plus views into the node."""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clustersession import (
    AttributeEvent,
    ClusterConfig,
    ClusterSessionMiddleware,
    Session,
    SessionEvent,
    SessionListener,
)

config = ClusterConfig.from_env()
heard: list[dict[str, Any]] = []


class Recorder(SessionListener):
    """Keeps every event, so a test can ask what this node's listeners were told."""

    def _keep(self, kind: str, event: SessionEvent | AttributeEvent) -> None:
        heard.append({"kind": kind, "id": event.session_id, "remote": event.remote,
                      "name": getattr(event, "name", None)})  # fmt: skip

    def session_created(self, event: SessionEvent) -> None:
        self._keep("created", event)

    def session_destroyed(self, event: SessionEvent) -> None:
        self._keep("destroyed", event)

    def attribute_added(self, event: AttributeEvent) -> None:
        self._keep("added", event)


def session_of(request: Request) -> Session:
    session = request.session
    assert isinstance(session, Session)
    return session


async def view(request: Request) -> JSONResponse:
    session = session_of(request)
    return JSONResponse({"id": session.id if session else None, "data": dict(session)})


async def update(request: Request) -> JSONResponse:
    session = session_of(request)
    session.update(await request.json())
    return JSONResponse({"id": session.id, "data": dict(session)})


async def regenerate(request: Request) -> JSONResponse:
    session = session_of(request)
    session.regenerate_id()
    return JSONResponse({"id": session.id})


async def invalidate(request: Request) -> JSONResponse:
    session_of(request).invalidate()
    return JSONResponse({"id": None})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"route": config.jvm_route})


async def state(request: Request) -> JSONResponse:
    manager = middleware.manager
    sessions = sorted((r.token, sorted(r.attributes.items()), r.route) for r in manager.store)
    fingerprint = hashlib.sha256(repr(sessions).encode()).hexdigest()
    return JSONResponse({"sessions": len(sessions), "fingerprint": fingerprint, "heard": heard})


inner = Starlette(
    routes=[
        Route("/", view),
        Route("/update", update, methods=["POST"]),
        Route("/regenerate", regenerate, methods=["POST"]),
        Route("/invalidate", invalidate, methods=["POST"]),
        Route("/health", health),
        Route("/state", state),
    ]
)
middleware = ClusterSessionMiddleware(inner, config=config, listeners=[Recorder()])
app = middleware
