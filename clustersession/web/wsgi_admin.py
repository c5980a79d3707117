"""``WSGISessionAdmin``: the admin API of :mod:`.admin` for WSGI apps (Flask, Django, plain).

A WSGI adapter's manager runs on its own event loop thread
(:class:`~clustersession.sessions.threaded.ManagerThread`); this object has the
methods of :class:`~.admin.SessionAdmin` as plain blocking calls that run on
that thread, so a view (any worker thread) or a script in the serving process
calls them directly: ``admin.invalidate_principal("ann")``. The first call
starts the process's manager if no request has yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..config import ClusterConfig
from ..sessions.record import SessionDelta
from ..sessions.threaded import ManagerThread
from .admin import SessionAdmin, SessionInfo

T = TypeVar("T")

ADMIN_ENVIRON_KEY = "clustersession.admin"
"""Where the WSGI adapters put their :class:`WSGISessionAdmin` in ``environ``."""


class WSGISessionAdmin:
    """The cluster's sessions as this node holds them, and their invalidation, from any thread."""

    def __init__(self, manager: ManagerThread, config: ClusterConfig) -> None:
        self.manager = manager
        self.config = config
        self.principal_attribute = config.manager.principal_attribute
        self.max_sessions_per_principal = config.manager.max_sessions_per_principal

    def _admin(self) -> SessionAdmin:
        return SessionAdmin(self.manager.start(), self.config)

    def _read(self, read: Callable[[SessionAdmin], T]) -> T:
        # The manager's dicts belong to its loop: read them there.
        admin = self._admin()
        return self.manager.call(lambda: read(admin))

    def get(self, session_id: str) -> SessionInfo | None:
        """The live session with this id (``token.route`` or the bare token), or ``None``."""
        return self._read(lambda admin: admin.get(session_id))

    def sessions(self) -> list[SessionInfo]:
        """Every live session this node holds (with DeltaManager: every session)."""
        return self._read(lambda admin: admin.sessions())

    def count(self) -> int:
        """How many live sessions this node holds."""
        return self._read(lambda admin: admin.count())

    def sessions_of(self, principal: object) -> list[SessionInfo]:
        """Every live session of ``principal`` (``manager.principal_attribute``), newest first."""
        return self._read(lambda admin: admin.sessions_of(principal))

    def status(self) -> dict[str, Any]:
        """The status page's data (members, counters), for an app to serve behind its own auth."""
        return self._read(lambda admin: admin.status())

    def invalidate(self, session_id: str) -> bool:
        """Invalidate a session on every node; whether it was live here."""
        return self.manager.run(self._admin().invalidate(session_id))

    def invalidate_principal(self, principal: object) -> int:
        """Log ``principal`` out everywhere: invalidate all their sessions; return how many."""
        return self.manager.run(self._admin().invalidate_principal(principal))

    def enforce_limit(self, deltas: Sequence[SessionDelta]) -> int:
        """Apply ``max_sessions_per_principal`` after a request's commit; return how many went.

        Called by the WSGI adapters after each commit; free unless a limit is set and
        the request wrote the principal attribute.
        """
        name = self.principal_attribute
        if self.max_sessions_per_principal < 0 or name is None:
            return 0
        if not any(name in delta.set and not delta.invalidated for delta in deltas):
            return 0
        return self.manager.run(self._admin().enforce_limit(deltas))
