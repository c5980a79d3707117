"""``LocalManager``: the one-node manager (Tomcat's StandardManager without persistence)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..channel import Channel
from .manager import ClusterView, Opened
from .snapshot import SessionSnapshots
from .stamped_store import StampedStore


class LocalManager(StampedStore):
    """Sessions of one node, nothing replicated: the stamped store and the web floor's answers."""

    channel: Channel | None = None
    """No channel: nothing is replicated."""

    def __init__(
        self,
        *,
        snapshot_path: str | None = None,
        snapshot_interval: float = 60.0,
        route: str | None = None,
        **store: Any,
    ) -> None:
        super().__init__(**store)
        self.snapshots = (
            None
            if snapshot_path is None
            else SessionSnapshots(self, snapshot_path, snapshot_interval, route)
        )
        self._snapshotter: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the snapshot (if configured) once, then start background work."""
        if self.started:
            return
        if self.snapshots is not None and self._snapshotter is None:
            if not len(self.store):
                self.snapshots.load()
            self._snapshotter = asyncio.get_running_loop().create_task(
                self.snapshots.run_forever(), name="clustersession-snapshot"
            )
        await super().start()

    async def stop(self) -> None:
        """Stop background work, then write the snapshot (if configured)."""
        await super().stop()
        if self._snapshotter is not None:
            self._snapshotter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshotter
            self._snapshotter = None
            assert self.snapshots is not None
            await self.snapshots.write()

    def open(self, token: str) -> Opened:
        """The live session ``token`` names, or whether its id is retired."""
        # lookup() and is_expired(), written out: asked on every request.
        record = self.store.get(token)
        if record is not None:
            now = self.clock()
            if not (
                0 < record.max_inactive_interval <= now - record.last_accessed_at
                or 0 < self.lifetime <= now - record.created_at
            ):
                return Opened(record)
            self.expire(record)
        return Opened(None, retired=token in self.tombstones)

    def view(self) -> ClusterView:
        """This node's session counts."""
        return ClusterView(
            sessions=len(self.store),
            rejected_sessions=self.rejected_sessions,
            tombstones=len(self.tombstones),
            created=self.sessions_created,
            expired=self.sessions_expired,
        )
