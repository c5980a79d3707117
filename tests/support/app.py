"""The demo-like app the tests serve, in process (:func:`create_app`) or under uvicorn.

Session routes (read, write, append, call a ``Session`` method) plus views into the
node (``/health``, ``/state``). Under uvicorn: ``tests.support.app:from_env --factory``,
configured by ``CLUSTERSESSION_*`` variables.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Sequence
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from clustersession import (
    AttributeEvent,
    ClusterConfig,
    ClusterSessionMiddleware,
    Session,
    SessionEvent,
    SessionListener,
)
from clustersession.sessions import codec
from clustersession.sessions.manager import ClusterView
from clustersession.web.admin import admin_of

from . import stackdump

ORIGINAL_ID: Final = "org.apache.catalina.ha.session.JvmRouteOriginalSessionID"
PRIMARY: Final = "org.apache.catalina.ha.tcp.isPrimarySession"


def session_of(request: Request) -> Session:
    session = request.session
    assert isinstance(session, Session)
    return session


async def view(request: Request) -> JSONResponse:
    return JSONResponse(dict(request.session))


async def update(request: Request) -> JSONResponse:
    request.session.update(await request.json())
    return JSONResponse(dict(request.session))


async def append(request: Request) -> JSONResponse:
    request.session.setdefault("items", []).append(request.path_params["item"])
    return JSONResponse(dict(request.session))


async def call(request: Request) -> PlainTextResponse:
    """``Session.<method>()`` (``invalidate``, ``regenerate_id``); the id it leaves, if any."""
    session = session_of(request)
    getattr(session, request.path_params["method"])()
    return PlainTextResponse(session.id if session else "")


async def original(request: Request) -> JSONResponse:
    """The id the route binder rewrote, if it did (the session is read to trigger it)."""
    request.session.get("x")
    return JSONResponse({"original": request.scope.get(ORIGINAL_ID)})


async def principal(request: Request) -> JSONResponse:
    """The admin API: a principal's session ids (GET), or log them out everywhere (DELETE)."""
    admin = admin_of(request)
    who = request.path_params["who"]
    if request.method == "DELETE":
        return JSONResponse({"invalidated": await admin.invalidate_principal(who)})
    return JSONResponse(sorted(info.id for info in admin.sessions_of(who)))


async def primary(request: Request) -> JSONResponse:
    """What ``valves.replication.primary_indicator`` said about this request's session."""
    request.session.get("x")
    return JSONResponse({"primary": request.scope.get(PRIMARY)})


def node_info(view: ClusterView, route: str) -> dict[str, Any]:
    """Which process answered and what it sees of the cluster (``/health``).

    ``pid`` tells apart the workers of one server (they share a route and a port);
    ``members`` are the routes of the other members, so a test can wait for a
    killed node to be dropped.
    """
    members = sorted(member.route for member in view.members)
    info = {"route": route, "pid": os.getpid(), "members": members, "sessions": view.sessions}
    if view.roles is not None:  # the backup manager: primaries, backups, proxies
        info["roles"] = dataclasses.asdict(view.roles)
    return info


ROUTES: Final = [
    Route("/", view),
    Route("/original", original),
    Route("/primary", primary),
    Route("/update", update, methods=["POST"]),
    Route("/append/{item}", append, methods=["POST"]),
    Route("/call/{method}", call, methods=["POST"]),
    Route("/principal/{who}", principal, methods=["GET", "DELETE"]),
]


class Recorder(SessionListener):
    """Keeps every event, so a test can ask (``/state``) what this node's listeners heard."""

    def __init__(self) -> None:
        self.heard: list[dict[str, Any]] = []

    def _keep(self, kind: str, event: SessionEvent | AttributeEvent) -> None:
        self.heard.append({"kind": kind, "id": event.session_id, "remote": event.remote,
                           "name": getattr(event, "name", None)})  # fmt: skip

    def session_created(self, event: SessionEvent) -> None:
        self._keep("created", event)

    def session_destroyed(self, event: SessionEvent) -> None:
        self._keep("destroyed", event)

    def attribute_added(self, event: AttributeEvent) -> None:
        self._keep("added", event)


def create_app(
    config: ClusterConfig,
    listeners: Sequence[SessionListener] = (),
    *,
    max_age: int | None = 14 * 24 * 60 * 60,
) -> ClusterSessionMiddleware:
    """:data:`ROUTES`, ``/health``, ``/node`` and ``/state``, behind our middleware.

    ``/health``: :func:`node_info`. ``/node``: the route and pid of the process that
    answered, and the session (so a test sees which worker read what).

    ``/holds/{token}``: whether this node holds a copy of that session, or a proxy.

    ``/state``: the session count, a fingerprint of every session (equal on nodes
    that agree), what a :class:`Recorder` among ``listeners`` heard and the
    channel's counters (``channel``: members added and removed, ...; empty when
    not distributable). ``/state?contents=1`` adds every session: id -> route and
    values (read from the store: nothing is touched or rebound).
    """

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(node_info(middleware.manager.view(), config.jvm_route))

    async def node(request: Request) -> JSONResponse:
        session = dict(request.session)
        return JSONResponse({"route": config.jvm_route, "pid": os.getpid(), "session": session})

    async def state(request: Request) -> JSONResponse:
        manager = middleware.manager
        sessions = sorted((r.token, sorted(r.attributes.items()), r.route) for r in manager.store)
        fingerprint = hashlib.sha256(repr(sessions).encode()).hexdigest()
        heard = [e for listener in listeners if isinstance(listener, Recorder)
                 for e in listener.heard]  # fmt: skip
        view = manager.view()
        answer = {"sessions": len(sessions), "fingerprint": fingerprint, "heard": heard,
                  "channel": view.channel.as_dict() if view.channel else {}}  # fmt: skip
        if request.query_params.get("contents"):
            answer["contents"] = {
                token: {"route": route, "values": {k: codec.decode(v) for k, v in attributes}}
                for token, attributes, route in sessions
            }
        return JSONResponse(answer)

    async def holds(request: Request) -> JSONResponse:
        """Whether this node holds a copy of the session (and, backup manager, a proxy)."""
        token = request.path_params["token"]
        proxies = getattr(middleware.manager, "proxies", {})
        return JSONResponse({"held": token in middleware.manager.store, "proxy": token in proxies})

    routes = [*ROUTES, Route("/health", health), Route("/node", node), Route("/state", state),
              Route("/holds/{token}", holds)]  # fmt: skip
    inner = Starlette(routes=routes)
    middleware = ClusterSessionMiddleware(
        inner, config=config, listeners=list(listeners), max_age=max_age
    )
    return middleware


def from_env() -> ClusterSessionMiddleware:
    """uvicorn ``--factory`` entry: configured from the environment, with a :class:`Recorder`.

    ``TEST_NODE_LOG=INFO`` (say) logs the library at that level to stderr,
    for reading a node's log after a failure; ``TEST_COOKIE_MAX_AGE`` is the
    cookie's Max-Age in seconds (default Starlette's 14 days).
    """
    stackdump.install()  # SIGUSR2: where this node spends its time (tests/cluster/web_nodes)
    level = os.environ.get("TEST_NODE_LOG")
    if level:
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(message)s")
    max_age = int(os.environ.get("TEST_COOKIE_MAX_AGE", 14 * 24 * 60 * 60))
    return create_app(ClusterConfig.from_env(), [Recorder()], max_age=max_age)
