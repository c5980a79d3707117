"""``LocalManager``: the one-node manager (Tomcat's StandardManager without persistence)."""

from __future__ import annotations

from ..channel import Channel
from .manager import ClusterView, Opened
from .stamped_store import StampedStore


class LocalManager(StampedStore):
    """Sessions of one node, nothing replicated: the stamped store and the web floor's answers."""

    channel: Channel | None = None
    """No channel: nothing is replicated."""

    def open(self, token: str) -> Opened:
        """The live session ``token`` names, or whether its id is retired."""
        record = self.lookup(token)
        return Opened(record, retired=record is None and token in self.tombstones)

    def view(self) -> ClusterView:
        """This node's session counts."""
        return ClusterView(
            sessions=len(self.store),
            rejected_sessions=self.rejected_sessions,
            tombstones=len(self.tombstones),
            created=self.sessions_created,
            expired=self.sessions_expired,
        )
