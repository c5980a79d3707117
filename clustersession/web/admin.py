"""``SessionAdmin``: the cluster's sessions for apps and operators, in a route or outside one.

Tomcat has the manager app (``/text/sessions``, ``/expire``) and JMX; Spring
Session has ``FindByIndexNameSessionRepository``. This is ours: look a session
up by id, list and count them, invalidate one everywhere, and, with
``manager.principal_attribute`` (say ``"user_id"``), find every session of a user
and invalidate them all ("log out everywhere" after a password change).

An invalidation is a write like a request's ``session.invalidate()``: stamped,
tombstoned, replicated to every node, listeners told. It only needs the
:class:`~clustersession.sessions.manager.Manager` protocol, so every manager
that implements it (DeltaManager, BackupManager) serves it.

Where to get one: ``request.app.state.clustersession`` (set when the
middleware starts, so an app's own startup code and background tasks see it),
:func:`admin_of` in a route, or ``clustersession.web.fastapi.ClusterDep``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from ..config import ClusterConfig
from ..sessions import codec
from ..sessions.ids import join_id, loggable_id, session_fields
from ..sessions.manager import Manager
from ..sessions.record import SessionDelta, SessionRecord
from ..sessions.session import Session
from .status import snapshot

logger = logging.getLogger("clustersession.admin")

SCOPE_KEY = "clustersession.admin"
"""The ASGI scope key under which the middleware puts its :class:`SessionAdmin`."""
STATE_NAME = "clustersession"
"""The ``app.state`` attribute under which the middleware puts its :class:`SessionAdmin`."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One session as the admin API shows it (a copy: changing it changes nothing)."""

    id: str
    """The id as the cookie carries it, ``token.route``."""
    route: str | None
    created_at: float
    last_accessed_at: float
    max_inactive_interval: int
    attributes: dict[str, Any]
    """The decoded values (an attribute that does not decode is left out)."""
    principal: Any = None
    """The value of ``manager.principal_attribute``, if configured and set."""


class SessionAdmin:
    """The sessions of the cluster, as one node holds them, and their invalidation.

    ``manager`` is the node's manager, ``config`` its configuration. Methods that
    invalidate are coroutines: call them on the loop the manager runs on (a
    route, a lifespan or background task of the app).
    """

    def __init__(self, manager: Manager, config: ClusterConfig) -> None:
        self.manager = manager
        self.config = config
        self.principal_attribute = config.manager.principal_attribute
        self.max_sessions_per_principal = config.manager.max_sessions_per_principal

    # -- reading -----------------------------------------------------------------------

    def get(self, session_id: str) -> SessionInfo | None:
        """The live session with this id (``token.route`` or the bare token), or ``None``."""
        record = self.manager.lookup(_token_of(session_id))
        return None if record is None else self._info(record)

    def sessions(self) -> list[SessionInfo]:
        """Every live session this node holds (with DeltaManager: every session)."""
        return [self._info(record) for record in self.manager.records()]

    def count(self) -> int:
        """How many live sessions this node holds."""
        return sum(1 for _ in self.manager.records())

    def sessions_of(self, principal: object) -> list[SessionInfo]:
        """Every live session whose ``manager.principal_attribute`` equals ``principal``.

        Most recently used first. Scans the node's sessions: O(sessions).
        """
        records = self._records_of(principal)
        return [self._info(record) for record in records]

    def status(self) -> dict[str, Any]:
        """The status page's data (members, counters), for an app to serve behind its own auth."""
        return snapshot(self.manager, self.config.jvm_route)

    # -- invalidating ------------------------------------------------------------------

    async def invalidate(self, session_id: str) -> bool:
        """Invalidate a session on every node; whether it was live here."""
        record = self.manager.lookup(_token_of(session_id))
        if record is None:
            return False
        await self._invalidate([record])
        return True

    async def invalidate_principal(self, principal: object) -> int:
        """Log ``principal`` out everywhere: invalidate all their sessions; return how many."""
        records = self._records_of(principal)
        await self._invalidate(records)
        if records:
            logger.info("invalidated %d sessions of a principal", len(records))
        return len(records)

    async def enforce_limit(self, deltas: Sequence[SessionDelta]) -> int:
        """Apply ``max_sessions_per_principal`` after a commit; return how many were evicted.

        When a write gives a session a principal that now has more sessions than
        allowed, the least recently used ones are invalidated everywhere (Spring
        Security's default): the login that just happened wins.
        """
        limit, name = self.max_sessions_per_principal, self.principal_attribute
        if limit < 0 or name is None:
            return 0
        evicted = 0
        for delta in deltas:
            encoded = delta.set.get(name)
            if encoded is None or delta.invalidated:
                continue
            principal = codec.decode(encoded)
            records = self._records_of(principal)
            # The session just written stays, whatever its access time says.
            records.sort(key=lambda r: r.token != delta.token)
            extra = records[limit:]
            if extra:
                logger.info(
                    "max_sessions_per_principal = %d: evicting %d least recently used sessions "
                    "(kept %s)",
                    limit,
                    len(extra),
                    loggable_id(delta.token),
                )
                await self._invalidate(extra)
                evicted += len(extra)
        return evicted

    async def _invalidate(self, records: Sequence[SessionRecord]) -> None:
        if not records:
            return
        now = self.manager.clock()
        deltas = [
            SessionDelta(token=r.token, route=r.route, accessed_at=now, invalidated=True)
            for r in records
        ]
        await self.manager.commit(deltas)

    # -- helpers -----------------------------------------------------------------------

    def _records_of(self, principal: object) -> list[SessionRecord]:
        name = self.principal_attribute
        if name is None:
            raise LookupError("set manager.principal_attribute to find the sessions of a principal")
        found = [r for r in self.manager.records() if _principal(r, name) == principal]
        found.sort(key=lambda r: r.last_accessed_at, reverse=True)
        return found

    def _info(self, record: SessionRecord) -> SessionInfo:
        stored = {**record.attributes, **(record.local or {})}
        attributes: dict[str, Any] = {}
        for key, data in stored.items():
            try:
                attributes[key] = codec.decode(data)
            except codec.CodecError:
                logger.warning("session %s: attribute %r does not decode, left out",
                               loggable_id(record.token), key,
                               extra=session_fields(record.token))  # fmt: skip
        name = self.principal_attribute
        return SessionInfo(
            id=join_id(record.token, record.route),
            route=record.route,
            created_at=record.created_at,
            last_accessed_at=record.last_accessed_at,
            max_inactive_interval=record.max_inactive_interval,
            attributes=attributes,
            principal=None if name is None else attributes.get(name),
        )


def _token_of(session_id: str) -> str:
    return session_id.partition(".")[0]


def _principal(record: SessionRecord, name: str) -> object:
    data = record.attributes.get(name)
    if data is None:
        return None
    try:
        return codec.decode(data)
    except codec.CodecError:
        return None


def admin_of(connection: HTTPConnection) -> SessionAdmin:
    """The :class:`SessionAdmin` of the middleware serving this request (or websocket)."""
    admin = connection.scope.get(SCOPE_KEY)
    if not isinstance(admin, SessionAdmin):
        raise RuntimeError("no clustersession admin: is ClusterSessionMiddleware installed?")
    return admin


def session_of(connection: HTTPConnection) -> Session:
    """``request.session``, typed: the clustersession :class:`Session` (no ``isinstance``)."""
    session = connection.scope.get("session")
    if not isinstance(session, Session):
        raise RuntimeError("no clustersession session: is ClusterSessionMiddleware installed?")
    return session
