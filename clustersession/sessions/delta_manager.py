"""``DeltaManager``: every session on every node (Tomcat's DeltaManager, convergent).

What it adds to :class:`~.manager.LocalManager`:

* **Deltas out**: the stamped changes of the requests that end in one loop
  iteration go to every member in one DELTA message, with the cluster's send
  options (8: queued; 2/6: those requests wait for its acknowledgements). A
  failure is logged and counted, never raised.
* **Deltas in**: merged (:mod:`.change`): order, duplicates and concurrent writes
  on several nodes all end in the same state everywhere.
* **Keep-alive**: reads send nothing per request; the ids of sessions used here
  go out in one TOUCH message per period, so a session in use on one node does
  not expire on another.
* **Gaps and partitions**: DELTA messages are numbered per sender; a gap (a lost
  connection, a partition) triggers an anti-entropy exchange at once, and one
  runs every few seconds with a random member anyway: 256 bucket digests are
  compared and only the differing buckets' sessions are exchanged.
* **State transfer**: a joining node asks the oldest member for everything, in
  chunks; whatever arrives meanwhile merges as usual, so nothing needs queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..channel import ChannelError, ChannelMessage, GroupChannel, Member
from ..channel import options as send_options
from ..config import ClusterConfig
from . import messages
from .change import Change, WireError, snapshot
from .listeners import AttributeEvent, SessionEvent, SessionListener
from .manager import LocalManager
from .messages import Kind, Message
from .record import SessionDelta, SessionRecord

logger = logging.getLogger("clustersession")

ANTI_ENTROPY_INTERVAL = 5.0  # seconds between routine digest exchanges
MEMBER_WAIT = 2  # heartbeats to wait for members before deciding we are the first node
BATCH_CHANGES = 500  # changes per DELTA message at most


class DeltaManager(LocalManager):
    """A :class:`LocalManager` whose sessions are replicated to every member of a channel."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        listeners: Sequence[SessionListener] = (),
        clock: Callable[[], float] = time.time,
        channel: GroupChannel | None = None,
    ) -> None:
        self.config = config
        self.channel = channel if channel is not None else GroupChannel(config)
        super().__init__(
            sweep_interval=config.manager.expiry_sweep_interval,
            listeners=listeners,
            clock=clock,
            default_interval=config.manager.max_inactive_interval,
            node=int.from_bytes(self.channel.local.id[:4], "big"),
            max_active_sessions=config.manager.max_active_sessions,
            replicated_names=config.manager.session_attribute_name_filter,
        )
        self.channel.add_listener(self._received)
        interval = config.manager.max_inactive_interval
        # Keep-alive period: often enough that a peer never sees a live session idle
        # for long, rarely enough to cost nothing.
        self.touch_interval = min(max(interval / 10, 1.0), 30.0) if interval > 0 else 30.0
        self._touched: dict[str, float] = {}
        # The changes of the requests that end in this loop iteration, sent together;
        # the future is resolved once they are sent (acknowledged, unless asynchronous).
        self._outbox: list[Change] = []
        self._outbox_sent: asyncio.Future[None] | None = None
        self._seq = 0
        self._expected: dict[bytes, int] = {}
        self._transfers: dict[int, asyncio.Queue[Message]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self._started = False
        self._synced = False  # state transfer over (done, failed, or not needed)
        self._start_lock = asyncio.Lock()
        self.state_transferred: bool | None = None  # None: not needed (first node)
        self.counters: dict[str, int] = {
            "deltas_sent": 0,
            "deltas_received": 0,
            "replication_failures": 0,
            "touches_sent": 0,
            "gaps_detected": 0,
            "anti_entropy_rounds": 0,
            "sessions_repaired": 0,
            "bad_messages": 0,
            "state_transfers_served": 0,
        }

    # -- the manager API the middleware uses -------------------------------------

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has completed."""
        return self._started

    def route_is_alive(self, route: str | None) -> bool:
        """Whether a member (or this node) serves ``route``."""
        if route is None or route == self.channel.local.route:
            return True
        return any(m.route == route for m in self.channel.members)

    async def start(self) -> None:
        """Join the cluster, fetch its sessions, start background work."""
        async with self._start_lock:
            if self._started:
                return
            await self.channel.start()
            await super().start()
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._touch_forever(), name="clustersession-touch"),
                loop.create_task(self._anti_entropy_forever(), name="clustersession-anti-entropy"),
            ]
            self._started = True
            try:
                await self._state_transfer()
            finally:
                # Until now a digest exchange would only have crossed the transfer
                # (an empty node differs in every bucket): anti-entropy starts after it.
                self._synced = True

    async def stop(self) -> None:
        """Leave the cluster. Sessions live on elsewhere unless configured otherwise."""
        if not self._started:
            return
        self._started = False
        # Changes not sent yet go out first: stopping must not lose acknowledged writes.
        outbox, sent = self._outbox, self._outbox_sent
        self._outbox, self._outbox_sent = [], None
        if sent is not None:
            await self._send_batch(outbox, sent)
        if self._spawned:  # sends in flight get a moment to finish
            await asyncio.wait(list(self._spawned), timeout=2.0)
        if self.config.manager.expire_sessions_on_shutdown:
            await self._expire_everywhere()
        await self._flush_touches()
        for task in [*self._tasks, *self._spawned]:
            task.cancel()
        for task in [*self._tasks, *self._spawned]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await super().stop()
        await self.channel.stop()

    async def commit(
        self, deltas: Sequence[SessionDelta], *, replicate: bool = True
    ) -> list[Change]:
        """Apply a request's changes here, then send them to every member."""
        changes = await super().commit(deltas)
        outgoing = []
        for change in changes:
            if change.is_access_only:
                self._touched[change.token] = change.accessed_at
            else:
                outgoing.append(change)
        if not outgoing or not replicate:
            return changes
        # The changes of every request that ends in this loop iteration go out
        # together, as one DELTA per peer. With 2 or 6 the requests wait for its
        # acknowledgements (shielded: a client that goes away cancels no send).
        if self._outbox_sent is None:
            loop = asyncio.get_running_loop()
            self._outbox_sent = loop.create_future()
            loop.call_soon(self._flush_outbox)
        self._outbox.extend(outgoing)
        sent = self._outbox_sent
        if not self.config.channel_send_options & send_options.ASYNCHRONOUS:
            await asyncio.shield(sent)
        return changes

    def _flush_outbox(self) -> None:
        outbox, sent = self._outbox, self._outbox_sent
        self._outbox, self._outbox_sent = [], None
        if sent is not None:  # else stop() sent them already
            self._spawn(self._send_batch(outbox, sent))

    async def _send_batch(self, changes: list[Change], sent: asyncio.Future[None]) -> None:
        try:
            size = BATCH_CHANGES
            if len(changes) <= size:
                await self._send_delta(changes)  # the usual case: no task per chunk
            else:
                chunks = range(0, len(changes), size)
                await asyncio.gather(*(self._send_delta(changes[i : i + size]) for i in chunks))
        finally:
            if not sent.done():
                sent.set_result(None)

    def reroute(self, record: SessionRecord, route: str) -> Change:
        """Make this node the session's route (failover) and tell the cluster."""
        change = Change(record.token, self.clock(), route=route, route_stamp=self.hlc.stamp())
        self.apply(change, remote=False)
        self._spawn(self._send_delta([change]))
        return change

    # -- sending -------------------------------------------------------------------

    async def _send_delta(self, changes: list[Change]) -> None:
        if not self.channel.members:
            return  # alone: a node that joins later gets everything by state transfer
        self._seq += 1
        payload = messages.encode(Message(Kind.DELTA, seq=self._seq, changes=changes))
        try:
            await self.channel.send(None, payload)
            self.counters["deltas_sent"] += len(changes)
        except (ChannelError, ValueError) as exc:
            # Never the user's problem: anti-entropy repairs what did not arrive.
            self.counters["replication_failures"] += 1
            logger.warning("replication failed: %s", exc)

    async def _send_to(self, member: Member, message: Message) -> None:
        await self.channel.send([member], messages.encode(message), send_options.USE_ACK)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(work)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)
        task.add_done_callback(_log_failure)

    # -- receiving -----------------------------------------------------------------

    async def _received(self, message: ChannelMessage) -> None:
        try:
            decoded = messages.decode(message.payload)
        except WireError as exc:
            self.counters["bad_messages"] += 1
            logger.warning("dropped a session message from %s: %s", message.sender, exc)
            return
        sender = message.sender
        kind = decoded.kind
        if kind is Kind.DELTA:
            self._check_sequence(sender, decoded.seq)
            self._apply_all(decoded.changes, decoded.dead)
            self.counters["deltas_received"] += len(decoded.changes)
        elif kind is Kind.TOUCH:
            for token, accessed_at in decoded.touches:
                record = self.store.get(token)
                if record is not None and accessed_at > record.last_accessed_at:
                    record.last_accessed_at = accessed_at
        elif kind is Kind.GET_ALL:
            self._spawn(self._serve_state(sender, decoded.request_id))
        elif kind is Kind.ALL_CHUNK:
            queue = self._transfers.get(decoded.request_id)
            if queue is not None:
                queue.put_nowait(decoded)
        elif kind is Kind.DIGEST:
            self._spawn(self._answer_digest(sender, decoded.buckets))
        elif kind is Kind.SYNC:
            self._repair(decoded.changes, decoded.dead)
            if decoded.buckets:  # the last chunk: the peer wants ours of these buckets
                self._spawn(self._send_buckets(sender, set(decoded.buckets), Kind.RECORDS))
        else:
            self._repair(decoded.changes, decoded.dead)

    def _apply_all(self, changes: list[Change], dead: list[tuple[str, int]]) -> None:
        for token, stamp in dead:
            self.hlc.observe(stamp)
            self.apply(Change(token, 0.0, invalidated=stamp), remote=True)
        for change in changes:
            self.hlc.observe(change.highest_stamp())
            try:
                self.apply(change, remote=True)
            except Exception:  # one bad change must not stop the others
                self.counters["bad_messages"] += 1
                logger.exception("could not apply a change to session %.8s…", change.token)

    def _repair(self, changes: list[Change], dead: list[tuple[str, int]]) -> None:
        before = list(self.store.buckets)
        self._apply_all(changes, dead)
        if self.store.buckets != before:
            self.counters["sessions_repaired"] += len(changes)

    def _check_sequence(self, sender: Member, seq: int) -> None:
        expected = self._expected.get(sender.id)
        self._expected[sender.id] = seq + 1
        if expected is not None and seq != expected:
            self.counters["gaps_detected"] += 1
            logger.info("missed %d delta message(s) from %s: repairing", seq - expected, sender)
            self._spawn(self._exchange_digest(sender))

    # -- keep-alive ----------------------------------------------------------------

    async def _touch_forever(self) -> None:
        while True:
            await asyncio.sleep(self.touch_interval)
            await self._flush_touches()

    async def _flush_touches(self) -> None:
        if not self._touched or not self.channel.members:
            self._touched.clear()
            return
        touched, self._touched = self._touched, {}
        payload = messages.encode(Message(Kind.TOUCH, touches=list(touched.items())))
        try:
            await self.channel.send(None, payload, send_options.ASYNCHRONOUS)
            self.counters["touches_sent"] += len(touched)
        except (ChannelError, ValueError) as exc:
            logger.warning("keep-alive failed: %s", exc)

    def is_expired(self, record: SessionRecord, now: float) -> bool:
        """Owners expire on time; copies wait for keep-alives that may be in flight."""
        interval = record.max_inactive_interval
        if interval <= 0:
            return False
        idle = now - record.last_accessed_at
        if record.route == self.channel.local.route:
            return idle >= interval
        # A copy whose user is served elsewhere: allow for keep-alives in flight.
        return idle >= interval + 2 * self.touch_interval

    # -- anti-entropy --------------------------------------------------------------

    async def _anti_entropy_forever(self) -> None:
        while True:
            await asyncio.sleep(ANTI_ENTROPY_INTERVAL * random.uniform(0.5, 1.5))
            members = self.channel.members
            if members and self._synced:
                await self._exchange_digest(random.choice(members))

    async def _exchange_digest(self, member: Member) -> None:
        self.counters["anti_entropy_rounds"] += 1
        digest = Message(Kind.DIGEST, buckets=list(self.store.buckets))
        with contextlib.suppress(ChannelError):
            await self._send_to(member, digest)

    async def _answer_digest(self, member: Member, theirs: list[int]) -> None:
        if not self._synced:
            return  # still receiving the cluster's state: nothing useful to compare yet
        ours = self.store.buckets
        differing = {i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b}
        if differing:
            await self._send_buckets(member, differing, Kind.SYNC)

    async def _send_buckets(self, member: Member, buckets: set[int], kind: Kind) -> None:
        """Our sessions (and dead ids) of ``buckets``, in acknowledged chunks.

        Chunked like a state transfer: after a long partition or against an empty
        node, a bucket exchange can be most of the store. A SYNC's last chunk names
        the buckets, which asks the peer to answer with its own (RECORDS).
        """
        records = self.store.in_buckets(buckets)
        dead = self._dead_in(buckets)
        size = self.config.manager.send_all_sessions_size
        starts = range(0, max(len(records), 1), size)
        with contextlib.suppress(ChannelError):
            for start in starts:
                last = start == starts[-1]
                message = Message(
                    kind,
                    changes=[snapshot(r) for r in records[start : start + size]],
                    dead=dead if last else [],
                )
                if kind is Kind.SYNC and last:
                    message.buckets = sorted(buckets)
                await self._send_to(member, message)  # acknowledged: paces the chunks

    def _dead_in(self, buckets: set[int]) -> list[tuple[str, int]]:
        from .digest import bucket_of

        return [(t, s) for t, (s, _) in self.tombstones.items() if bucket_of(t) in buckets]

    # -- state transfer ------------------------------------------------------------

    async def _state_transfer(self) -> None:
        timeout = self.config.manager.state_transfer_timeout
        if timeout == 0:
            return
        wait = MEMBER_WAIT * self.config.membership.frequency / 1000 + 1.0
        deadline = time.monotonic() + wait
        while not self.channel.members and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # membership settles within two heartbeats
        if not self.channel.members:
            logger.info("no other member: this is the first node, starting at once")
            return
        limit = None if timeout < 0 else float(timeout)
        for member in self.channel.members:  # oldest first
            try:
                count = await asyncio.wait_for(self._fetch_state(member), limit)
            except (TimeoutError, ChannelError) as exc:
                logger.error(
                    "state transfer from %s failed: %s; trying the next member", member, exc
                )
                continue
            self.state_transferred = True
            logger.info("received %d sessions from %s", count, member)
            return
        self.state_transferred = False
        logger.error(
            "no member sent its sessions: this node starts without them and anti-entropy "
            "will fill them in"
        )

    async def _fetch_state(self, member: Member) -> int:
        request_id = secrets.randbits(62)
        queue: asyncio.Queue[Message] = asyncio.Queue()
        self._transfers[request_id] = queue
        try:
            await self._send_to(member, Message(Kind.GET_ALL, request_id=request_id))
            count, expected_index = 0, 0
            while True:
                chunk = await queue.get()
                if chunk.index != expected_index:
                    raise ChannelError({member: RuntimeError(f"chunk {chunk.index} out of order")})
                expected_index += 1
                self._apply_all(chunk.changes, chunk.dead)
                count += len(chunk.changes)
                if chunk.last:
                    return count
        finally:
            del self._transfers[request_id]

    async def _serve_state(self, member: Member, request_id: int) -> None:
        self.counters["state_transfers_served"] += 1
        size = self.config.manager.send_all_sessions_size
        records = list(self.store)
        dead = [(t, s) for t, (s, _) in self.tombstones.items()]
        index = 0
        for start in range(0, max(len(records), 1), size):
            batch = records[start : start + size]
            last = start + size >= len(records)
            chunk = Message(
                Kind.ALL_CHUNK,
                request_id=request_id,
                index=index,
                last=last,
                changes=[snapshot(r) for r in batch],
                dead=dead if last else [],
            )
            # Each chunk waits for its ACK: flow control, and a dead joiner stops us.
            await self._send_to(member, chunk)
            index += 1
        logger.info("sent %d sessions to %s in %d chunk(s)", len(records), member, index)

    async def _expire_everywhere(self) -> None:
        changes = [
            Change(r.token, self.clock(), invalidated=self.hlc.stamp()) for r in list(self.store)
        ]
        for change in changes:
            self.apply(change, remote=False)
        size = self.config.manager.send_all_sessions_size
        for start in range(0, len(changes), size):
            self._seq += 1
            batch = changes[start : start + size]
            payload = messages.encode(Message(Kind.DELTA, seq=self._seq, changes=batch))
            with contextlib.suppress(ChannelError):
                await self.channel.send(None, payload, send_options.USE_ACK)

    # -- listeners -------------------------------------------------------------------

    def _notify(self, method: str, event: SessionEvent | AttributeEvent) -> None:
        if event.remote:
            manager = self.config.manager
            lifecycle = method in ("session_created", "session_destroyed", "session_id_changed")
            allowed = (
                manager.notify_session_listeners_on_replication
                if lifecycle
                else manager.notify_listeners_on_replication
            )
            if not allowed:
                return
        super()._notify(method, event)

    def stats(self) -> dict[str, Any]:
        """Counters for the status page."""
        return {
            **self.counters,
            "rejected_sessions": self.rejected_sessions,
            "sessions": len(self.store),
            "tombstones": len(self.tombstones),
            "state_transferred": self.state_transferred,
            "channel": self.channel.stats().as_dict(),
        }


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background replication task failed", exc_info=task.exception())
