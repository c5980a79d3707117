"""Deltas out and in: all-to-all replication (Tomcat's DeltaManager + ReplicationValve).

Out: the stamped changes of the requests that end in one loop iteration go to
every member in one DELTA message (at most ``BATCH_CHANGES`` each), with the
cluster's send options; with 2 or 6 those requests wait for its
acknowledgements. One DELTA is in flight at a time (group commit): the requests
that end while it is sent (with 2 and 6: acknowledged) share the next one and
wait for its one acknowledgement, rather than each sending its own and waiting
its turn. A failure is logged and counted, never raised: anti-entropy
repairs what did not arrive.

In: DELTA messages are numbered per sender; a gap (a lost connection, a
partition) is reported so that anti-entropy runs at once, and the changes merge
whatever their order (:mod:`.change`).

Targeted (the backup manager): :meth:`Replicator.queue_to` sends a member only
the changes of the sessions it holds copies of, in DELTA messages numbered per
receiver, so the receiver's gap detection works the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..channel import ChannelError, Member, member_fields
from ..channel.application import nodes
from ..channel.tasks import BackgroundTasks
from .change import Change
from .chunks import chunked, send_acknowledged
from .clock import stamp_time
from .context import ReplicationContext
from .wire import Kind, Message, encode

logger = logging.getLogger("clustersession")

BATCH_CHANGES = 500  # changes per DELTA message at most

# A batch: changes to all, changes per member, the shared future, the waiters' own.
_Batch = tuple[
    list[Change],
    dict[bytes, tuple[Member, list[Change]]],
    asyncio.Future[None],
    list[asyncio.Future[None]],
]


class Replicator:
    """Sends this node's changes as numbered DELTA messages and merges those of its peers."""

    def __init__(
        self,
        context: ReplicationContext,
        *,
        tasks: BackgroundTasks,
        on_gap: Callable[[Member], None],
    ) -> None:
        self.sessions = context.sessions
        self.channel = context.channel
        self.config = context.config
        self.counters = context.counters
        self.lag = context.timings.lag
        self.on_gap = on_gap
        self.options: int | None = None
        """Send options of every DELTA (``None``: the channel's, ``channel_send_options``)."""
        self._tasks = tasks
        # The changes of the requests that end in this loop iteration, sent together;
        # the future is resolved once they are sent (acknowledged, unless asynchronous).
        self._outbox: list[Change] = []
        self._targeted: dict[bytes, tuple[Member, list[Change]]] = {}
        self._outbox_sent: asyncio.Future[None] | None = None
        # Each waiting request's own future (queue_waiting), resolved with the batch:
        # no shield, hence no loop iteration, between the ACK and the request.
        self._waiters: list[asyncio.Future[None]] = []
        # A queued DELTA is being sent (and, with 2 and 6, acknowledged): the next
        # waits for it, gathering every request that ends meanwhile (group commit).
        self._sending = False
        self._seq = 0
        self._seq_to: dict[bytes, int] = {}
        self._expected: dict[bytes, int] = {}

    # -- out -------------------------------------------------------------------

    def queue(self, changes: list[Change]) -> asyncio.Future[None]:
        """Send ``changes`` with those of every request that ends in this loop iteration.

        The future, shared by the batch, is resolved when they are sent (for 2 and
        6: acknowledged).
        """
        self._outbox.extend(changes)
        return self._batch_future()

    def queue_waiting(self, changes: list[Change]) -> asyncio.Future[None]:
        """As :meth:`queue`, with a future of the caller's own (cancelling it cancels nothing).

        For a request that waits: the batch resolves it directly, so the request
        runs in the loop iteration after the acknowledgement (a shield around the
        shared future would cost one more).
        """
        self._outbox.extend(changes)
        self._batch_future()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def queue_to(self, member: Member, changes: list[Change]) -> asyncio.Future[None]:
        """As :meth:`queue`, to ``member`` only (its own numbering)."""
        entry = self._targeted.get(member.id)
        if entry is None:
            self._targeted[member.id] = (member, list(changes))
        else:
            entry[1].extend(changes)
        return self._batch_future()

    def _batch_future(self) -> asyncio.Future[None]:
        if self._outbox_sent is None:
            self._outbox_sent = asyncio.get_running_loop().create_future()
            if not self._sending:  # else the task sending a DELTA sends this one next
                # Its task starts an iteration later and sends in the one after that:
                # what these requests spawned (the backup manager's OWNERS) goes first.
                asyncio.get_running_loop().call_soon(self._start_sending)
        return self._outbox_sent

    def _start_sending(self) -> None:
        # The batch is taken here, in the callback: what the next iteration queues
        # is the next batch, as before the sending task existed.
        if not self._sending:
            batch = self._take()
            if batch is not None:
                self._sending = True
                self._tasks.spawn(self._send_groups(batch), "clustersession-delta")

    def _take(self) -> _Batch | None:
        """What is queued, leaving the outbox empty (``None``: nothing is)."""
        sent = self._outbox_sent
        if sent is None:
            return None
        batch = (self._outbox, self._targeted, sent, self._waiters)
        self._outbox, self._targeted, self._outbox_sent, self._waiters = [], {}, None, []
        return batch

    async def flush(self) -> None:
        """Send what is queued now, and wait for it (stopping must not lose writes)."""
        batch = self._take()
        if batch is not None:
            await self._send_batch(*batch)

    def send_soon(self, changes: list[Change]) -> None:
        """Send ``changes`` in a DELTA of their own, in the background."""
        self._tasks.spawn(self.send_delta(changes), "clustersession-delta")

    async def _send_groups(self, first: _Batch) -> None:
        """Send ``first``; then, in the same task, each group that gathered meanwhile.

        One task for a run of groups: the next DELTA goes out in the loop iteration
        that learns the previous one was acknowledged, with no task to start first.
        """
        batch: _Batch | None = first
        try:
            while batch is not None:
                await self._send_batch(*batch)
                batch = self._take()
        finally:
            self._sending = False
            if self._outbox_sent is not None:  # left by a failure or a cancel: a new task
                asyncio.get_running_loop().call_soon(self._start_sending)

    async def _send_batch(
        self,
        changes: list[Change],
        targeted: dict[bytes, tuple[Member, list[Change]]],
        sent: asyncio.Future[None],
        waiters: list[asyncio.Future[None]],
    ) -> None:
        try:
            if targeted:
                await asyncio.gather(
                    *(
                        self.send_delta_to(member, list(batch))
                        for member, to_member in targeted.values()
                        for _, batch, _ in chunked(to_member, BATCH_CHANGES)
                    )
                )
            if len(changes) <= BATCH_CHANGES:
                if changes or not targeted:
                    await self.send_delta(changes)  # the usual case: no task per chunk
            else:
                batches = [list(batch) for _, batch, _ in chunked(changes, BATCH_CHANGES)]
                await asyncio.gather(*(self.send_delta(batch) for batch in batches))
        finally:
            if not sent.done():
                sent.set_result(None)
            for waiter in waiters:
                if not waiter.done():  # a cancelled request's is
                    waiter.set_result(None)

    async def send_delta(self, changes: list[Change]) -> None:
        """One DELTA to every member, with the cluster's send options; failures logged."""
        # Tool members (the clustersession command) hold no sessions: sending them
        # deltas would only make every commit wait for a busy tool (options 2 and 6).
        targets = nodes(self.channel.members)
        if not targets:
            return  # alone: a node that joins later gets everything by state transfer
        self._seq += 1
        payload = encode(Message(Kind.DELTA, seq=self._seq, changes=changes))
        await self._send(targets, payload, len(changes))

    async def send_delta_to(self, member: Member, changes: list[Change]) -> None:
        """One DELTA to ``member``, numbered in its own sequence; failures logged."""
        seq = self._seq_to[member.id] = self._seq_to.get(member.id, 0) + 1
        payload = encode(Message(Kind.DELTA, seq=seq, changes=changes))
        await self._send([member], payload, len(changes))

    async def _send(self, targets: list[Member], payload: bytes, count: int) -> None:
        try:
            await self.channel.send(targets, payload, self.options)
            self.counters.deltas_sent += count
        except (ChannelError, ValueError) as exc:
            # Never the user's problem: anti-entropy repairs what did not arrive.
            self.counters.replication_failures += 1
            logger.warning("replication failed: %s", exc)

    async def expire_everywhere(self) -> None:
        """Invalidate every session here and on every member (``expire_sessions_on_shutdown``)."""
        changes = [
            Change(r.token, self.sessions.clock(), invalidated=self.sessions.hlc.stamp())
            for r in list(self.sessions.store)
        ]
        for change in changes:
            self.sessions.apply(change, remote=False)
        if not changes:
            return
        size = self.config.manager.send_all_sessions_size
        messages = (
            Message(Kind.DELTA, seq=self._next_seq(), changes=list(batch))
            for _, batch, _ in chunked(changes, size)
        )
        targets = nodes(self.channel.members)
        await send_acknowledged(self.channel, targets, messages, on_failure=lambda _exc: None)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- in --------------------------------------------------------------------

    def received(self, sender: Member, message: Message) -> None:
        """Merge a peer's DELTA; a gap in its numbering asks for anti-entropy."""
        expected = self._expected.get(sender.id)
        # A number below the expected one is a duplicate or a late arrival, not a gap:
        # merging it again is harmless, and it must not wind the expectation back.
        self._expected[sender.id] = max(message.seq + 1, expected or 0)
        if expected is not None and message.seq > expected:
            self.counters.gaps_detected += 1
            missed = message.seq - expected
            logger.info(
                "missed %d delta message(s) from %s: repairing",
                missed,
                sender,
                extra=member_fields(sender),
            )
            self.on_gap(sender)
        self.merge(message.changes, message.dead)
        self.counters.deltas_received += len(message.changes)
        if message.changes:  # one sample a message: its last write, the latest in the batch
            written = stamp_time(message.changes[-1].highest_stamp())
            self.lag.observe(self.sessions.clock() - written)

    def merge(self, changes: list[Change], dead: list[tuple[str, int]]) -> None:
        """Merge what a peer sent; changes that fail are counted as bad."""
        self.counters.bad_messages += self.sessions.merge_remote(changes, dead)
