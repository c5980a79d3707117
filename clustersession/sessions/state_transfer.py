"""State transfer: a joining node asks the oldest member for every session, in chunks.

Whatever arrives meanwhile (deltas of requests served elsewhere) merges as
usual (:mod:`.change`), so nothing needs queueing: the transfer and the deltas
commute. A member that fails or times out is skipped for the next oldest; if
none answers, the node starts empty and anti-entropy fills it in.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator

from ..channel import ChannelError, Member, member_fields
from ..channel.application import nodes
from .change import Change, snapshot
from .chunks import chunked, send_acknowledged
from .context import ReplicationContext
from .wire import Kind, Message

logger = logging.getLogger("clustersession")

MEMBER_WAIT = 2  # heartbeats to wait for members before deciding we are the first node

RouteEntry = tuple[str, str | None, int, float]
"""Where one session lives: token, route, route stamp, last access (0.0: unknown)."""


class StateTransfer:
    """Fetches the cluster's sessions on start; serves ours to nodes that join."""

    def __init__(
        self, context: ReplicationContext, *, index: Callable[[], list[RouteEntry]] | None = None
    ) -> None:
        """``index``: what to serve instead of every session (the backup manager's
        route-only entries, from which a joiner learns where each session lives)."""
        self.index = index
        self.sessions = context.sessions
        self.channel = context.channel
        self.config = context.config
        self.counters = context.counters
        self.timings = context.timings
        self.transferred: bool | None = None  # None: not needed (first node)
        self._transfers: dict[int, asyncio.Queue[Message]] = {}

    async def run(self) -> None:
        """Fetch every session from the oldest member that answers (see :attr:`transferred`)."""
        timeout = self.config.manager.state_transfer_timeout
        if timeout == 0:
            return
        wait = MEMBER_WAIT * self.config.membership.frequency / 1000 + 1.0
        deadline = time.monotonic() + wait
        # Tool members (the clustersession command) hold no sessions: never ask them.
        while not nodes(self.channel.members) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # membership settles within two heartbeats
        if not nodes(self.channel.members):
            logger.info("no other member: this is the first node, starting at once")
            return
        limit = None if timeout < 0 else float(timeout)
        started = time.monotonic()
        try:
            await self._fetch_from_oldest(limit)
        finally:
            self.timings.state_transfer_seconds = time.monotonic() - started

    async def _fetch_from_oldest(self, limit: float | None) -> None:
        for member in nodes(self.channel.members):  # oldest first
            try:
                count = await asyncio.wait_for(self._fetch(member), limit)
            except (TimeoutError, ChannelError) as exc:
                logger.error(
                    "state transfer from %s failed: %s; trying the next member",
                    member,
                    exc,
                    extra=member_fields(member),
                )
                continue
            self.transferred = True
            logger.info("received %d sessions from %s", count, member, extra=member_fields(member))
            return
        self.transferred = False
        logger.error(
            "no member sent its sessions: this node starts without them and anti-entropy "
            "will fill them in"
        )

    async def _fetch(self, member: Member) -> int:
        request_id = secrets.randbits(62)
        queue: asyncio.Queue[Message] = asyncio.Queue()
        self._transfers[request_id] = queue
        try:
            await send_acknowledged(
                self.channel, [member], [Message(Kind.GET_ALL, request_id=request_id)]
            )
            count, expected_index = 0, 0
            while True:
                chunk = await queue.get()
                if chunk.index != expected_index:
                    raise ChannelError({member: RuntimeError(f"chunk {chunk.index} out of order")})
                expected_index += 1
                self.counters.bad_messages += self.sessions.merge_remote(chunk.changes, chunk.dead)
                count += len(chunk.changes)
                if chunk.last:
                    return count
        finally:
            del self._transfers[request_id]

    def chunk_received(self, chunk: Message) -> None:
        """An ALL_CHUNK: hand it to the transfer that asked for it (others are ignored)."""
        queue = self._transfers.get(chunk.request_id)
        if queue is not None:
            queue.put_nowait(chunk)

    async def serve(self, member: Member, request_id: int) -> None:
        """Send every session and dead id to ``member``; each chunk waits for its ACK."""
        self.counters.state_transfers_served += 1
        size = self.config.manager.send_all_sessions_size
        dead = [(t, s) for t, (s, _) in self.sessions.tombstones.items()]
        batches: Iterator[tuple[int, list[Change], bool]]
        if self.index is None:
            records = list(self.sessions.store)
            # Snapshots are made chunk by chunk: a copy of the whole store at once would double it.
            batches = ((i, [snapshot(r) for r in b], last) for i, b, last in chunked(records, size))
            total = len(records)
        else:
            entries = self.index()
            # Changes are made chunk by chunk, as snapshots are: ~300 B each, 100,000 of
            # them at once held ~30 MB on the serving node for the whole transfer.
            batches = ((i, _route_only(b), last) for i, b, last in chunked(entries, size))
            total = len(entries)
        chunks = (
            Message(
                Kind.ALL_CHUNK,
                request_id=request_id,
                index=index,
                last=last,
                changes=changes,
                dead=dead if last else [],
            )
            for index, changes, last in batches
        )
        # Acknowledged one by one: flow control, and a dead joiner stops us.
        sent = await send_acknowledged(self.channel, [member], chunks)
        logger.info(
            "sent %d sessions to %s in %d chunk(s)",
            total,
            member,
            sent,
            extra=member_fields(member),
        )


def _route_only(entries: Iterable[RouteEntry]) -> list[Change]:
    """Route-only changes: what a joining backup node keeps as proxy entries."""
    return [
        Change(token, accessed, route=route, route_stamp=stamp)
        for token, route, stamp, accessed in entries
    ]
