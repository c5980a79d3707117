"""``ClusterSessionMiddleware``: Starlette's ``SessionMiddleware``, kept on the server."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from starlette.datastructures import MutableHeaders, Secret
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import ClusterConfig
from ..sessions.ids import SessionIds
from ..sessions.listeners import SessionListener
from ..sessions.manager import Manager
from ..sessions.managers import manager_for
from ..sessions.record import SessionRecord
from ..sessions.session import Session, UnserialisableChange
from .cookies import SameSite, SessionCookie
from .status import StatusPage

logger = logging.getLogger("clustersession")

# Tomcat's session-timeout default, used when the cookie has no Max-Age to take it from.
_DEFAULT_IDLE_SECONDS = 1800


class ClusterSessionMiddleware:
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
    lifecycle and attribute changes. ``scope["clustersession"]`` is this middleware,
    for apps that show the cluster.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str | Secret | None = None,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,  # 14 days, in seconds
        path: str = "/",
        same_site: SameSite = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        *,
        config: ClusterConfig | None = None,
        listeners: Sequence[SessionListener] = (),
    ) -> None:
        if secret_key is None and config is None:
            raise TypeError("ClusterSessionMiddleware needs secret_key=... or config=...")
        self.app = app
        self.config = config if config is not None else ClusterConfig()
        secret = str(secret_key) if secret_key is not None else self.config.secret
        self.cookie = SessionCookie(
            session_cookie,
            max_age=max_age,
            path=path,
            same_site=same_site,
            https_only=https_only,
            domain=domain,
            partitioned=partitioned,
        )
        if config is not None:
            self.max_inactive_interval = config.manager.max_inactive_interval
        else:
            self.max_inactive_interval = _DEFAULT_IDLE_SECONDS if max_age is None else max_age
        # Starlette refuses a cookie older than a non-positive max_age at once.
        self._sessions_expire_at_once = config is None and max_age is not None and max_age <= 0
        self.ids = SessionIds(secret, self.config.jvm_route)
        # With web.xml's <distributable/>, every session on every node.
        self.manager: Manager = manager_for(
            self.config, listeners=listeners, idle_timeout=self.max_inactive_interval
        )
        valves = self.config.valves
        # ReplicationValve's filter: requests whose path matches never replicate.
        self._filter = re.compile(valves.replication.filter) if valves.replication.filter else None
        self._original_id_key = valves.route_binder.session_id_attribute
        limited = self.config.manager.max_active_sessions >= 0
        self._may_create = self.manager.may_create if limited else None
        self.status = StatusPage(valves.status, self.manager, self.config.jvm_route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind not in ("http", "websocket"):  # pragma: no cover - no other ASGI types
            await self.app(scope, receive, send)
            return

        if not self.manager.started:
            await self.manager.start()
        if kind == "http" and self.status.matches(scope["path"]):
            await self.status(scope, receive, send)
            return
        now = self.manager.clock()
        record, cookie_route, retired = self._load(scope)
        session = Session(
            self.ids,
            record,
            default_max_inactive_interval=self.max_inactive_interval,
            now=now,
            may_create=self._may_create,
        )
        # The client's cookie names another route than the session has (a failover,
        # or a renamed session): hand it the current id even if nothing changes.
        session.cookie_stale = record is not None and cookie_route != record.route
        session.retired = retired
        scope["session"] = session
        scope["clustersession"] = self  # for apps that show the cluster (see web.status)
        if kind == "websocket":
            # No response headers to carry a cookie: only an existing session is saved.
            await self.app(scope, receive, send)
            if session.existed:
                await self._commit(session, scope["path"])
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._settle_cookie(session, message)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Before the last chunk goes out, so a client that has its response
                # finds its writes on its next request.
                await self._commit(session, scope["path"])
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _load(self, scope: Scope) -> tuple[SessionRecord | None, str | None, bool]:
        """The session the cookie names, the route it names, and whether its id is retired."""
        value = self.cookie.read(scope["headers"])
        if value is None or self._sessions_expire_at_once:
            return None, None, False
        parsed = self.ids.parse(value)
        if parsed is None:
            logger.debug("refused session cookie %.60r: malformed or bad signature", value)
            return None, None, False
        token, route = parsed
        opened = self.manager.open(token)
        if opened.rerouted and self._original_id_key:
            scope[self._original_id_key] = value  # JvmRouteBinderValve's original id
        return opened.record, route, opened.retired

    def _settle_cookie(self, session: Session, message: Message) -> None:
        if not session.accessed and not session.cookie_stale:
            return
        headers = message.setdefault("headers", [])
        if session.retired and not session.was_invalidated:
            headers.append((b"vary", b"Cookie"))
            return  # an id retired by invalidate()/regenerate_id(): no new cookie either
        if not isinstance(headers, list):
            headers = message["headers"] = list(headers)
        if any(name.lower() == b"vary" for name, _ in headers):
            MutableHeaders(raw=headers).add_vary_header("Cookie")
        else:  # the common case, without building a MutableHeaders
            headers.append((b"vary", b"Cookie"))
        if not session.modified and not session.cookie_stale:
            return
        if session:
            value = self.cookie.set_header(session.id)
        elif session.existed:
            value = self.cookie.clear_header()
        else:
            return
        headers.append((b"set-cookie", value.encode("latin-1")))

    async def _commit(self, session: Session, path: str) -> None:
        if self._sessions_expire_at_once:
            return
        now = self.manager.clock()
        try:
            deltas = session.changes(now)
        except UnserialisableChange as exc:
            logger.error("session %s: not saved: %s", session.id, exc)
            deltas = exc.deltas
        if session.retired and not session.was_invalidated:
            if any(not delta.is_access_only for delta in deltas):
                logger.warning(
                    "dropped the writes of a request that carried a retired session id "
                    "(invalidated, or replaced by regenerate_id()); it was in flight, or replayed"
                )
            return
        if deltas:
            replicate = self._filter is None or not self._filter.fullmatch(path)
            await self.manager.commit(deltas, replicate=replicate)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the manager before the app's startup, stop it after its shutdown."""

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.manager.start()
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.manager.stop()
            await send(message)

        await self.app(scope, receive_wrapper, send_wrapper)
