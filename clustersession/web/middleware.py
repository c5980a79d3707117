"""``ClusterSessionMiddleware``: Starlette's ``SessionMiddleware``, kept on the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..deploy import FarmDeployer
from ..sessions.ids import SessionIds
from ..sessions.listeners import SessionListener
from ..sessions.manager import ClusterView, Manager
from ..sessions.managers import manager_for
from ..sessions.session import Session
from .adapter import SessionAdapter
from .admin import SCOPE_KEY, STATE_NAME, SessionAdmin
from .cookies import SessionCookie
from .farm import farm_for
from .front import Commit, CookieAction

logger = logging.getLogger("clustersession")


class ClusterSessionMiddleware(SessionAdapter[ASGIApp, Manager]):
    """Server-side ``request.session`` for Starlette and FastAPI apps.

    A drop-in for ``starlette.middleware.sessions.SessionMiddleware``: it takes the
    same arguments with the same defaults and sets the same cookie, but the cookie
    carries only a session id (``token.jvm_route``, signed when ``secret_key`` is
    set) and the data stays on the server.

    Without ``config`` the middleware runs one node, and ``max_age`` is also the
    session's idle timeout (``None``: a browser-session cookie with Tomcat's
    30-minute idle timeout; zero or less: sessions never survive their request, as
    Starlette's expired cookies). With ``config`` (a :class:`ClusterConfig`), the
    idle timeout is ``config.manager.max_inactive_interval``, the route is
    ``config.jvm_route``, and ``secret_key`` defaults to ``config.secret``.

    With ``config.distributable`` (web.xml's ``<distributable/>``) every session is
    replicated to every member of the cluster (Tomcat's DeltaManager): the channel
    starts in ASGI lifespan, and a joining node fetches the sessions before it
    serves; each request's changes are sent when its response ends (options 2 and
    6 hold back the last body chunk until the peers acknowledged them); a request
    whose path fully matches ``valves.replication.filter`` sends nothing; a request
    for a session whose route names no live member re-routes it here
    (``valves.route_binder``). ``valves.status.path`` serves the status page.

    ``listeners`` are :class:`SessionListener` instances told about session
    lifecycle and attribute changes. :attr:`admin`, the cluster's
    :class:`~.admin.SessionAdmin`, is on ``app.state.clustersession`` once the
    middleware starts (in a Starlette/FastAPI app) and under
    ``scope["clustersession.admin"]`` in every request (see :func:`.admin.admin_of`).
    ``rolling`` (default ``config.manager.rolling``) sends the cookie again on reads.
    """

    farm: FarmDeployer | None = None
    """The farm deployer, when ``[deployer]`` is configured (started with the manager)."""
    _loop: asyncio.AbstractEventLoop | None = None
    _starting: asyncio.Future[None] | None = None
    _stopped = False

    _admin: SessionAdmin | None = None

    @property
    def admin(self) -> SessionAdmin:
        """The cluster's sessions for the app: look up, list, invalidate (see :mod:`.admin`)."""
        if self._admin is None:
            self._admin = SessionAdmin(self.manager, self.config)
        return self._admin

    def _build_manager(self, listeners: Sequence[SessionListener]) -> Manager:
        # With web.xml's <distributable/>, every session on every node.
        return manager_for(self.config, listeners=listeners, idle_timeout=self.front.idle_timeout)

    @property
    def ids(self) -> SessionIds:
        """The session ids' signer (``token.jvm_route``)."""
        return self.front.ids

    @property
    def cookie(self) -> SessionCookie:
        """The session cookie's name and attributes."""
        return self.front.cookie

    @property
    def max_inactive_interval(self) -> int:
        """The idle timeout of new sessions, in seconds."""
        return self.front.idle_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            await self._not_http(kind, scope, receive, send)
            return
        path = scope["path"]
        if path in self._special_paths:  # one set lookup for the probes, metrics and status
            if self._probe_or_metrics(path):
                # Answered before anything waits for the manager: during the state transfer too.
                await self._serve_probe_or_metrics(scope, receive, send)
                return
            if not self.manager.ready:
                await self._start()
                _publish(scope, self.admin)
            if self.status.matches(path):
                await self.status(scope, receive, send)
                return
        front, manager = self.front, self.manager
        if not manager.ready:
            await self._start()  # without lifespan; or waits for the state transfer
            _publish(scope, self.admin)
        cookie_value = front.cookie.read(scope["headers"])
        if cookie_value is not None and manager.fetches:
            await front.fetch(cookie_value, manager)
        session = self._open(scope, cookie_value)

        # The start is held until the first body message: a response whose whole body
        # is that message (an empty one above all: Content-Length 0 completes it with
        # the headers) must not reach the client before its changes are committed.
        held: Message | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal held
            kind = message["type"]
            if kind == "http.response.start":
                action = front.cookie_action(session)
                if action is not None:
                    _apply(action, message)
                held = message
                return
            if kind == "http.response.body" and not message.get("more_body"):
                # Before the last chunk goes out, so a client that has its response
                # finds its writes on its next request. Most reads commit nothing:
                # decided here, without awaiting a coroutine for it.
                commit = front.commit(session, path, now=manager.clock())
                if commit is not None:
                    if manager.waits_for_peers or self._principal_limit > 0:
                        await self._apply_commit(commit)
                    else:  # one node, or asynchronous replication: nothing to wait for
                        manager.commit_nowait(commit.deltas, replicate=commit.replicate)
            if held is not None:
                start, held = held, None
                await send(start)
            await send(message)

        await self.app(scope, receive, send_wrapper)
        if held is not None:  # a start with no body after it: send what the app sent
            await send(held)

    async def _not_http(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan, websockets (a session, but no response headers for a cookie), others."""
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind != "websocket":  # pragma: no cover - no other ASGI types
            await self.app(scope, receive, send)
            return
        if not self.manager.ready:
            await self._start()
            _publish(scope, self.admin)
        cookie_value = self.front.cookie.read(scope["headers"])
        if cookie_value is not None and self.manager.fetches:
            await self.front.fetch(cookie_value, self.manager)
        session = self._open(scope, cookie_value)
        # No response headers to carry a cookie: only an existing session is saved.
        await self.app(scope, receive, send)
        if session.existed:
            await self._commit(session, scope["path"])

    def _open(self, scope: Scope, cookie_value: str | None) -> Session:
        """The session the cookie names (fetched already), put in the scope with the admin API."""
        front, manager = self.front, self.manager
        session, original_id, primary = front.open(
            cookie_value, manager.open, now=manager.clock(), may_create=self._may_create
        )
        if original_id is not None:
            scope[front.original_id_key] = original_id
        if primary is not None:
            scope[front.primary_indicator_name] = primary
        scope["session"] = session
        scope["clustersession"] = self  # for apps that show the cluster (see web.status)
        admin = self._admin  # the property, written out: asked on every request
        scope[SCOPE_KEY] = admin if admin is not None else self.admin
        return session

    async def _commit(self, session: Session, path: str) -> None:
        commit = self.front.commit(session, path, now=self.manager.clock())
        if commit is not None:
            await self._apply_commit(commit)

    async def _apply_commit(self, commit: Commit) -> None:
        manager = self.manager
        if manager.waits_for_peers:
            await manager.commit(commit.deltas, replicate=commit.replicate)
        else:  # nothing to wait for (one node, or asynchronous replication)
            manager.commit_nowait(commit.deltas, replicate=commit.replicate)
        if self._principal_limit > 0:
            await self.admin.enforce_limit(commit.deltas)

    def _probe_or_metrics(self, path: str) -> bool:
        return self.health.matches(path) or (
            self.metrics is not None and self.metrics.matches(path)
        )

    async def _serve_probe_or_metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if self.health.matches(path):
            answer = self.health.answer(path, live=lambda: True, ready=self._ready)
            response = Response(answer.body, answer.status, media_type=answer.content_type)
        else:
            assert self.metrics is not None
            body = self.metrics.exposition()
            response = Response(body, media_type=self.metrics.content_type)
        await response(scope, receive, send)

    def _ready(self) -> bool:
        """The manager serves; if nothing started it yet (no lifespan), start it now.

        Not after lifespan shutdown stopped it: a probe must not bring a leaving node back.
        """
        if not self.manager.started and self._starting is None and not self._stopped:
            self._starting = asyncio.ensure_future(self._start())
            self._starting.add_done_callback(_log_failure)
        return self.manager.ready

    def _metrics_view(self) -> ClusterView | None:
        loop = self._loop
        if loop is None:
            return self.manager.view()  # asked on the loop: nothing started yet
        from .metrics import call_on_loop  # loaded already: metrics are enabled

        return call_on_loop(loop, self.manager.view)

    async def _join(self) -> None:
        """Start the manager without waiting for the state transfer, then the farm deployer.

        The deployer (when ``[deployer]`` is configured) shares the manager's
        channel (see :mod:`.farm`, which the WSGI adapters use too). The metrics
        port, if any, opens here, in the process that serves.
        """
        self._loop = asyncio.get_running_loop()
        build_farm = farm_for(self.config)
        if build_farm is not None and self.farm is None:
            # Built before the channel joins, so it hears every request (see web.farm).
            self.farm = build_farm(self.manager)
        await self.manager.join()
        if self.farm is not None:
            await self.farm.start()
        if self.metrics is not None:
            self.metrics.serve_port()

    async def _start(self) -> None:
        """:meth:`_join`, then wait until the manager serves (the state transfer is over)."""
        try:
            await self._join()
            await self.manager.start()
        finally:
            self._starting = None

    async def _stop(self) -> None:
        self._stopped = True
        if self.metrics is not None:
            self.metrics.close_port()
        if self.farm is not None:
            await self.farm.stop()
        await self.manager.stop()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the manager before the app's startup, stop it after its shutdown."""

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Not the state transfer: the server listens meanwhile, so readiness
                # answers 503 until it is over (and requests wait for it).
                await self._join()
                _publish(scope, self.admin)
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self._stop()
            await send(message)

        await self.app(scope, receive_wrapper, send_wrapper)


def _publish(scope: Scope, admin: SessionAdmin) -> None:
    """Put the admin API on ``app.state`` when a Starlette app runs the middleware.

    Starlette sets ``scope["app"]`` before its middleware; a middleware wrapped
    around the app from outside sees no app, and the scope key serves instead.
    """
    state = getattr(scope.get("app"), "state", None)
    if state is not None:
        setattr(state, STATE_NAME, admin)


def _apply(action: CookieAction, message: Message) -> None:
    """Add ``Vary: Cookie`` (merged into an existing Vary) and the Set-Cookie, if any."""
    headers = message.setdefault("headers", [])
    if not isinstance(headers, list):
        headers = message["headers"] = list(headers)
    for name, _ in headers:
        if name.lower() == b"vary":
            MutableHeaders(raw=headers).add_vary_header("Cookie")
            break
    else:  # the common case, without building a MutableHeaders
        headers.append((b"vary", b"Cookie"))
    if action.set_cookie is not None:
        headers.append((b"set-cookie", action.set_cookie.encode("latin-1")))


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("session manager did not start", exc_info=future.exception())
