"""What the two replicating managers (delta and backup) decide alike about copies.

Both hold sessions in a :class:`StampedStore` and receive copies from peers; expiry of
a copy and listeners fired for replicated changes follow the same rules in both.
"""

from __future__ import annotations

from ..channel import Channel
from ..config import ClusterConfig
from .keepalive import KeepAlive
from .listeners import AttributeEvent, SessionEvent
from .record import SessionRecord
from .stamped_store import StampedStore

_LIFECYCLE = frozenset(("session_created", "session_destroyed", "session_id_changed"))


class ReplicatedStore(StampedStore):
    """A :class:`StampedStore` whose sessions are also held by peers (subclasses set the
    channel, config and keep-alive)."""

    channel: Channel
    config: ClusterConfig
    keepalive: KeepAlive

    def is_expired(self, record: SessionRecord, now: float) -> bool:
        """The session's own node expires it on time; copies wait for keep-alives in flight.

        The absolute lifetime needs no grace: the creation time is the same everywhere.
        """
        if self.outlived(record, now):
            return True
        interval = record.max_inactive_interval
        if interval <= 0:
            return False
        idle = now - record.last_accessed_at
        if record.route == self.channel.local.route:
            return idle >= interval
        return idle >= interval + self.keepalive.grace

    def _notify(self, method: str, event: SessionEvent | AttributeEvent) -> None:
        # Tomcat's notifyListenersOnReplication / notifySessionListenersOnReplication.
        if event.remote:
            manager = self.config.manager
            allowed = (
                manager.notify_session_listeners_on_replication
                if method in _LIFECYCLE
                else manager.notify_listeners_on_replication
            )
            if not allowed:
                return
        super()._notify(method, event)
