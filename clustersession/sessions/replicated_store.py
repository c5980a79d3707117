"""What the two replicating managers (delta and backup) decide alike about copies.

Both hold sessions in a :class:`StampedStore` and receive copies from peers; expiry of
a copy and listeners fired for replicated changes follow the same rules in both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from ..channel import Channel, GroupChannel
from ..channel.tasks import BackgroundTasks
from ..config import ClusterConfig
from .context import ReplicationContext
from .keepalive import KeepAlive
from .listeners import AttributeEvent, SessionEvent, SessionListener
from .manager import ReplicationCounters, ReplicationTimings
from .record import SessionRecord
from .stamped_store import StampedStore

logger = logging.getLogger("clustersession")

_LIFECYCLE = frozenset(("session_created", "session_destroyed", "session_id_changed"))


class ReplicatedStore(StampedStore):
    """A :class:`StampedStore` whose sessions are also held by peers.

    It owns what both managers set up alike (the channel, the store's settings from
    ``config``, counters, background tasks, the start-up transfer); a subclass sets
    its keep-alive and starts the transfer in ``join``.
    """

    keepalive: KeepAlive

    def __init__(
        self,
        config: ClusterConfig,
        *,
        listeners: Sequence[SessionListener] = (),
        clock: Callable[[], float] = time.time,
        channel: Channel | None = None,
    ) -> None:
        self.config = config
        self.channel: Channel = channel if channel is not None else GroupChannel(config)
        super().__init__(
            sweep_interval=config.manager.expiry_sweep_interval,
            listeners=listeners,
            clock=clock,
            default_interval=config.manager.max_inactive_interval,
            node=int.from_bytes(self.channel.local.id[:4], "big"),
            max_active_sessions=config.manager.max_active_sessions,
            replicated_names=config.manager.session_attribute_name_filter,
            lifetime=config.manager.lifetime,
        )
        self.counters = ReplicationCounters()
        self.timings = ReplicationTimings()
        # Periodic work runs until stop; the rest (sends, answers) gets a moment to finish.
        self._timers = BackgroundTasks(logger)
        self._tasks = BackgroundTasks(logger)
        self._context = ReplicationContext(self, self.channel, config, self.counters, self.timings)
        self._started = False
        self._transfer: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has completed."""
        return self._started

    @property
    def ready(self) -> bool:
        """Whether it serves: joined, the start-up transfer over, and not stopping."""
        transfer = self._transfer
        return self._started and transfer is not None and transfer.done()

    async def join(self) -> None:
        """Join the cluster, start background work and the start-up transfer."""
        raise NotImplementedError

    async def start(self) -> None:
        """Join the cluster; return once the start-up transfer is over.

        For ``delta`` that transfer brings every session; for ``backup`` it brings
        where they live (copies arrive from their primaries meanwhile, and requests
        are served before that ends: a missing copy is fetched).
        """
        await self.join()
        transfer = self._transfer
        if transfer is not None:
            await asyncio.shield(transfer)  # a caller that gives up does not stop the transfer

    # -- expiry and listeners ----------------------------------------------------------

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
