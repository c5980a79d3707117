"""``SessionFront``: one request's session, the same on every adapter.

What Starlette's ``SessionMiddleware`` does around a request, minus the I/O of a
particular server interface: read the id from the cookie, open the session the
manager holds for it, decide the response's ``Vary`` and ``Set-Cookie``, and
collect what the request changed. The ASGI middleware, the WSGI middleware and
the Flask and Django adapters each do their framework's I/O around it, so a
cookie written by one is read the same way by all (a mixed cluster).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..config import ClusterConfig
from ..sessions.ids import SessionIds, loggable_id, session_fields
from ..sessions.manager import Manager, Opened
from ..sessions.record import SessionDelta
from ..sessions.session import Session, UnserialisableChange
from .cookies import SameSite, SessionCookie

logger = logging.getLogger("clustersession")

# Tomcat's session-timeout default, used when the cookie has no Max-Age to take it from.
DEFAULT_IDLE_SECONDS = 1800


# A request's session; the id it came with if the route binder re-routed it (else
# None); with ``valves.replication.primary_indicator``, whether this node is the
# session's primary (its route, the id's ``.jvm_route``, names this node; None: no
# session came with the request, or the indicator is off). A tuple: built on every
# request, and any class instance costs several times as much to build.
Opening = tuple[Session, str | None, bool | None]


# Not frozen: built on every request, and a frozen dataclass costs ~4x to build.
@dataclass(slots=True)
class CookieAction:
    """What the response's headers need: ``Vary: Cookie``, and a ``Set-Cookie`` value or not."""

    set_cookie: str | None = None


# Most responses: Vary, no Set-Cookie (shared: readers never change an action).
_VARY_ONLY = CookieAction()


# Not frozen: built on every request, and a frozen dataclass costs ~4x to build.
@dataclass(slots=True)
class Commit:
    """A request's changes for the manager, and whether they replicate (ReplicationValve filter)."""

    deltas: list[SessionDelta]
    replicate: bool


class SessionFront:
    """Cookie in, session out, changes collected: framework-neutral.

    ``idle_timeout`` is the idle timeout of new sessions; ``expire_at_once``
    keeps nothing beyond the request (Starlette's ``max_age <= 0``);
    ``session_class`` is what :meth:`open` builds (a framework may need its own
    subclass, as Flask's ``SessionMixin``); ``rolling`` (default
    ``config.manager.rolling``) sends a live session's cookie again on every
    response, reads included, so its ``Max-Age`` starts over.
    """

    def __init__(
        self,
        ids: SessionIds,
        cookie: SessionCookie,
        config: ClusterConfig,
        *,
        idle_timeout: int,
        expire_at_once: bool = False,
        session_class: type[Session] = Session,
        rolling: bool | None = None,
    ) -> None:
        self.ids = ids
        self.rolling = config.manager.rolling if rolling is None else rolling
        self.cookie = cookie
        self.idle_timeout = idle_timeout
        self.expire_at_once = expire_at_once
        self.session_class = session_class
        valves = config.valves
        # ReplicationValve's filter: requests whose path matches never replicate.
        self._filter = re.compile(valves.replication.filter) if valves.replication.filter else None
        self.original_id_key = valves.route_binder.session_id_attribute
        # ReplicationValve's primaryIndicator: a request attribute, here a scope/environ key.
        self.primary_indicator = valves.replication.primary_indicator
        self.primary_indicator_name = valves.replication.primary_indicator_name

    @classmethod
    def from_arguments(
        cls,
        *,
        secret_key: str | None,
        session_cookie: str,
        max_age: int | None,
        path: str,
        same_site: SameSite,
        https_only: bool,
        domain: str | None,
        partitioned: bool,
        config: ClusterConfig | None,
        rolling: bool | None = None,
    ) -> SessionFront:
        """From Starlette's ``SessionMiddleware`` arguments, as both middlewares take them.

        Without ``config``, one node, and ``max_age`` is also the idle timeout
        (``None``: Tomcat's 30 minutes; ``<= 0``: nothing outlives its request).
        With it, the idle timeout is ``config.manager.max_inactive_interval``, the
        route ``config.jvm_route``, and ``secret_key`` defaults to ``config.secret``
        (the adapter refuses to have neither, naming itself).
        """
        settings = config if config is not None else ClusterConfig()
        secret = secret_key if secret_key is not None else settings.secret
        # Previous secrets belong to the config's secret, not to a secret_key of the app's.
        previous = settings.previous_secrets if secret_key is None else ()
        cookie = SessionCookie(
            session_cookie,
            max_age=max_age,
            path=path,
            same_site=same_site,
            https_only=https_only,
            domain=domain,
            partitioned=partitioned,
        )
        if config is not None:
            idle_timeout = config.manager.max_inactive_interval
        else:
            idle_timeout = DEFAULT_IDLE_SECONDS if max_age is None else max_age
        return cls(
            SessionIds(secret, settings.jvm_route, previous),
            cookie,
            settings,
            idle_timeout=idle_timeout,
            # Starlette refuses a cookie older than a non-positive max_age at once.
            expire_at_once=config is None and max_age is not None and max_age <= 0,
            rolling=rolling,
        )

    async def fetch(self, cookie_value: str, manager: Manager) -> None:
        """Let ``manager`` bring the cookie's session here before :meth:`open` (backup manager)."""
        if self.expire_at_once:
            return
        parsed = self.ids.parse(cookie_value)
        if parsed is not None:
            await manager.fetch(*parsed)

    def open(
        self,
        cookie_value: str | None,
        opener: Callable[[str], Opened],
        *,
        now: float,
        may_create: Callable[[], bool] | None,
        fetch: Callable[[str, str | None], object] | None = None,
    ) -> Opening:
        """The session the cookie's id names (``opener`` asks the manager), or a new one.

        ``fetch``, if given, is called with the cookie's id and route before
        ``opener``: the WSGI adapters' way to :meth:`Manager.fetch` (the ASGI side
        awaits :meth:`fetch` before this instead).
        """
        opened, cookie_route, original_id = None, None, None
        if cookie_value is not None and not self.expire_at_once:
            parsed = self.ids.parse(cookie_value)
            if parsed is None:
                logger.debug(
                    "refused session cookie %r (%d characters): malformed or bad signature",
                    loggable_id(cookie_value),
                    len(cookie_value),
                    extra=session_fields(cookie_value),
                )
            else:
                token, cookie_route = parsed
                if fetch is not None:
                    fetch(token, cookie_route)
                opened = opener(token)
                if opened.rerouted and self.original_id_key:
                    original_id = cookie_value  # JvmRouteBinderValve's original id
        record = opened.record if opened is not None else None
        # Positional: through type.__call__, keyword arguments cost a dict (~1.7k instructions).
        session = self.session_class(self.ids, record, self.idle_timeout, now, may_create)
        # The client's cookie names another route than the session has (a failover,
        # or a renamed session): hand it the current id even if nothing changes.
        if record is not None and cookie_route != record.route:
            session.cookie_stale = True
        if opened is not None and opened.retired:
            session.retired = True
        primary = None
        if record is not None and self.primary_indicator:
            primary = record.route == self.ids.route  # after a failover re-route: ours
        return session, original_id, primary

    def cookie_action(
        self, session: Session, *, cookie: SessionCookie | None = None, refresh: bool = False
    ) -> CookieAction | None:
        """What the response's headers need (``None``: the session was not used).

        ``cookie`` replaces :attr:`cookie` for this response (Flask gives permanent
        sessions a Max-Age and others none); ``refresh`` sends a live session's
        cookie again though nothing changed, so its Max-Age starts over (Flask's
        ``SESSION_REFRESH_EACH_REQUEST``).
        """
        # rolling: a request that came with a live session gets its cookie again.
        resend = session.cookie_stale or refresh or (self.rolling and not session.is_new)
        if not session.accessed and not resend:
            return None
        if session.retired and not session.was_invalidated:
            return _VARY_ONLY  # a retired id: no new cookie either
        if not session.modified and not resend:
            return _VARY_ONLY
        if session:
            return CookieAction((cookie or self.cookie).set_header(session.id))
        if session.existed:
            return CookieAction((cookie or self.cookie).clear_header())
        return _VARY_ONLY

    def commit(self, session: Session, path: str, *, now: float) -> Commit | None:
        """The request's changes, or ``None`` when there is nothing to commit."""
        if self.expire_at_once:
            return None
        try:
            deltas = session.changes(now)
        except UnserialisableChange as exc:
            logger.error(
                "session %s: not saved: %s",
                loggable_id(session.id),
                exc,
                extra=session_fields(session.id),
            )
            deltas = exc.deltas
        if session.retired and not session.was_invalidated:
            if any(not delta.is_access_only for delta in deltas):
                logger.warning(
                    "dropped the writes of a request that carried a retired session id "
                    "(invalidated, or replaced by regenerate_id()); it was in flight, or replayed",
                    extra=session_fields(session.id),
                )
            return None
        if not deltas:
            return None
        return Commit(deltas, self._filter is None or not self._filter.fullmatch(path))
