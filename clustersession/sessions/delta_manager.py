"""``DeltaManager``: every session on every node (Tomcat's DeltaManager, convergent).

A :class:`~.stamped_store.StampedStore` whose changes go to every member of a
:class:`~clustersession.channel.Channel`, composed of one part per concern:

* :mod:`.replication`: deltas out (one DELTA per loop iteration) and in (numbered
  per sender; a gap starts anti-entropy at once);
* :mod:`.keepalive`: reads send nothing per request; one TOUCH per period;
* :mod:`.anti_entropy`: digest exchanges repair what was lost, partitions included;
* :mod:`.state_transfer`: a joining node fetches everything before it serves.

It also answers the web floor (:class:`~.manager.Manager`): ``open`` takes over
the sessions of a node that is gone (Tomcat's JvmRouteBinderValve).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Sequence

from ..channel import Channel, ChannelMessage, GroupChannel, Member, member_fields
from ..channel import options as send_options
from ..channel.application import is_application_payload
from ..channel.tasks import BackgroundTasks, cancel_and_wait
from ..config import ClusterConfig
from .anti_entropy import AntiEntropy
from .change import Change
from .context import ReplicationContext
from .ids import loggable_id, session_fields
from .keepalive import KeepAlive
from .listeners import SessionListener
from .manager import (
    ClusterView,
    Opened,
    ReplicationCounters,
    ReplicationTimings,
    ReplicationView,
)
from .record import SessionDelta, SessionRecord
from .replicated_store import ReplicatedStore
from .replication import Replicator
from .snapshot import SessionSnapshots
from .state_transfer import StateTransfer
from .wire import Kind, WireError, decode

logger = logging.getLogger("clustersession")


class DeltaManager(ReplicatedStore):
    """A stamped store whose sessions are replicated to every member of a channel.

    ``channel`` defaults to a :class:`GroupChannel` built from ``config``; any
    :class:`Channel` will do (tests use :mod:`clustersession.channel.testing`).
    """

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
        context = ReplicationContext(self, self.channel, config, self.counters, self.timings)
        self.replication = Replicator(context, tasks=self._tasks, on_gap=self._repair_with)
        self.anti_entropy = AntiEntropy(context)
        self.state_transfer = StateTransfer(context)
        self.keepalive = KeepAlive(context)
        path = config.manager.snapshot_path
        self.snapshots = (
            None
            if path is None
            else SessionSnapshots(self, path, config.manager.snapshot_interval, config.jvm_route)
        )
        self.channel.add_listener(self._received)
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
        """Whether it serves: joined, the state transfer over, and not stopping."""
        transfer = self._transfer
        return self._started and transfer is not None and transfer.done()

    async def start(self) -> None:
        """Join the cluster, start background work; return once the cluster's sessions are here."""
        await self.join()
        transfer = self._transfer
        if transfer is not None:
            await asyncio.shield(transfer)  # a caller that gives up does not stop the transfer

    async def join(self) -> None:
        """Join the cluster and start background work; the state transfer runs on.

        :attr:`ready` says when it is over (the middleware's readiness probe
        answers 503 until then, while requests wait for it in :meth:`start`).
        """
        async with self._start_lock:
            if self._started:
                return
            await self.channel.start()
            await super().start()
            self._timers.spawn(self.keepalive.run_forever(), "clustersession-touch")
            self._timers.spawn(self.anti_entropy.run_forever(), "clustersession-anti-entropy")
            self._started = True
            self._transfer = asyncio.get_running_loop().create_task(
                self._receive_sessions(), name="clustersession-state-transfer-in"
            )

    async def _receive_sessions(self) -> None:
        try:
            await self.state_transfer.run()
        finally:
            self.anti_entropy.synced = True  # done, failed, or not needed
        if self.snapshots is not None:
            # Nothing came from peers: no peer, or peers as empty as we are (the
            # whole farm starting). A peer's sessions are fresher than a file.
            if not len(self.store):
                self.snapshots.load()
            self._timers.spawn(self.snapshots.run_forever(), "clustersession-snapshot")
        # What start-up and the transfer left (modules, the app, every session
        # fetched) lives on: out of the collector's sight, a full collection no
        # longer walks 100,000 sessions while requests wait (replication lag tail).
        gc.freeze()

    async def stop(self) -> None:
        """Leave the cluster. Sessions live on elsewhere unless configured otherwise."""
        if not self._started:
            return
        self._started = False  # not ready from here on: balancers stop sending requests
        transfer, self._transfer = self._transfer, None
        if transfer is not None:  # bounded: it may lose its cancel (wait_for on 3.11)
            await cancel_and_wait([transfer], logger=logger)
        await self.replication.flush()  # stopping must not lose acknowledged writes
        await self._tasks.wait(timeout=2.0)  # sends in flight get a moment to finish
        if self.config.manager.expire_sessions_on_shutdown:
            await self.replication.expire_everywhere()
        await self.keepalive.flush()
        await self._timers.cancel_all()
        if self.snapshots is not None:
            await self.snapshots.write()  # after the periodic writer stopped
        await self._tasks.cancel_all()
        await super().stop()
        await self.channel.stop()

    # -- the web floor's questions ------------------------------------------------------

    def open(self, token: str) -> Opened:
        """The live session ``token`` names; a session whose node is gone becomes ours.

        Re-routed only when the session's route names no live member: a request
        that a balancer merely misrouted to us is served without renaming, so its
        owner keeps it (Tomcat renames either way, and logs the user out of the owner).
        """
        record = self.lookup(token)
        if record is None:
            return Opened(None, retired=token in self.tombstones)
        local_route = self.channel.local.route
        if (
            not self.config.valves.route_binder.enabled
            or record.route == local_route
            or self.route_is_alive(record.route)
        ):
            return Opened(record)
        logger.info(
            "session %s: route %s is gone, now %s",
            loggable_id(record.token),
            record.route,
            local_route,
            extra=session_fields(record.token),
        )
        self.reroute(record, local_route)
        return Opened(record, rerouted=True)

    def route_is_alive(self, route: str | None) -> bool:
        """Whether a member (or this node) serves ``route``."""
        if route is None or route == self.channel.local.route:
            return True
        return any(m.route == route for m in self.channel.members)

    def reroute(self, record: SessionRecord, route: str) -> Change:
        """Make ``route`` (this node's) the session's route and tell the cluster."""
        change = Change(record.token, self.clock(), route=route, route_stamp=self.hlc.stamp())
        self.apply(change, remote=False)
        self.replication.send_soon([change])
        return change

    async def commit(
        self, deltas: Sequence[SessionDelta], *, replicate: bool = True
    ) -> list[Change]:
        """Apply a request's changes here, then send them to every member.

        With send options 2 or 6 it returns once the members acknowledged them
        (a client that goes away cancels no send: the batch is sent by a task of its own).
        """
        waits = self.waits_for_peers
        changes, sent = self._commit_now(deltas, replicate, wait=waits)
        if sent is not None and waits:
            await sent  # the request's own future: a cancelled request cancels no send
        return changes

    def commit_nowait(self, deltas: Sequence[SessionDelta], *, replicate: bool = True) -> None:
        """Apply a request's changes here and queue them for the members; wait for nothing.

        For callers on another thread in asynchronous mode (:class:`ManagerThread`):
        what a request of theirs asks next is queued behind this, so it sees it.
        """
        self._commit_now(deltas, replicate, wait=False)

    @property
    def waits_for_peers(self) -> bool:
        """Whether a commit waits for the members' acknowledgements (send options 2, 6)."""
        return not self.config.channel_send_options & send_options.ASYNCHRONOUS

    def _commit_now(
        self, deltas: Sequence[SessionDelta], replicate: bool, *, wait: bool
    ) -> tuple[list[Change], asyncio.Future[None] | None]:
        changes = self.commit_local(deltas)
        outgoing = []
        for change in changes:
            if change.is_access_only:
                self.keepalive.touched(change.token, change.accessed_at)
            else:
                outgoing.append(change)
        if outgoing and replicate:
            queue = self.replication.queue_waiting if wait else self.replication.queue
            return changes, queue(outgoing)
        return changes, None

    def view(self) -> ClusterView:
        """Sessions, members and traffic, for the status page."""
        return ClusterView(
            sessions=len(self.store),
            rejected_sessions=self.rejected_sessions,
            tombstones=len(self.tombstones),
            created=self.sessions_created,
            expired=self.sessions_expired,
            local=self.channel.local,
            members=tuple(self.channel.members),
            channel=self.channel.stats(),
            replication=ReplicationView(
                counters=self.counters,
                state_transferred=self.state_transfer.transferred,
                send_options=self.config.channel_send_options,
                lag=self.timings.lag.snapshot(),
                state_transfer_seconds=self.timings.state_transfer_seconds,
            ),
        )

    # -- receiving -----------------------------------------------------------------

    async def _received(self, message: ChannelMessage) -> None:
        if is_application_payload(message.payload):
            return  # another user of the shared channel (the farm deployer), not ours
        try:
            decoded = decode(message.payload)
        except WireError as exc:
            self.counters.bad_messages += 1
            logger.warning(
                "dropped a session message from %s: %s",
                message.sender,
                exc,
                extra=member_fields(message.sender),
            )
            return
        sender, kind = message.sender, decoded.kind
        if kind is Kind.DELTA:
            self.replication.received(sender, decoded)
        elif kind is Kind.TOUCH:
            self.keepalive.received(decoded.touches)
        elif kind is Kind.GET_ALL:
            work = self.state_transfer.serve(sender, decoded.request_id)
            self._tasks.spawn(work, "clustersession-state-transfer")
        elif kind is Kind.ALL_CHUNK:
            self.state_transfer.chunk_received(decoded)
        elif kind is Kind.DIGEST:
            work = self.anti_entropy.answer_digest(sender, decoded.buckets)
            self._tasks.spawn(work, "clustersession-anti-entropy-answer")
        elif kind is Kind.SYNC:
            self.anti_entropy.repair(decoded.changes, decoded.dead)
            if decoded.buckets:  # the last chunk: the peer wants ours of these buckets
                work = self.anti_entropy.send_buckets(sender, set(decoded.buckets), Kind.RECORDS)
                self._tasks.spawn(work, "clustersession-anti-entropy-records")
        else:
            self.anti_entropy.repair(decoded.changes, decoded.dead)

    def _repair_with(self, member: Member) -> None:
        self._tasks.spawn(self.anti_entropy.exchange(member), "clustersession-anti-entropy-gap")
