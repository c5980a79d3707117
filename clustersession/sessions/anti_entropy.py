"""Anti-entropy: two nodes compare digests and exchange only the sessions that differ.

Every few seconds with a random member, and at once after a gap in a peer's
DELTA numbering: we send our 256 bucket digests (:mod:`.digest`); the peer
answers with its sessions (and dead ids) of the buckets that differ (SYNC), and
asks for ours of the same buckets, which we send back (RECORDS). Both sides
merge (:mod:`.change`), so after one round both hold the union. This is what
makes lost messages, partitions and restarts converge.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from ..channel import ChannelError, Member
from ..channel.application import nodes
from .change import Change, snapshot
from .chunks import chunked, send_acknowledged
from .context import ReplicationContext
from .digest import bucket_of
from .wire import Kind, Message

INTERVAL = 5.0  # seconds between routine digest exchanges (randomised by half either way)


class AntiEntropy:
    """Digest exchanges with members: routine, and on demand after a gap."""

    def __init__(self, context: ReplicationContext) -> None:
        self.sessions = context.sessions
        self.channel = context.channel
        self.config = context.config
        self.counters = context.counters
        # Until the state transfer is over, a digest exchange would only cross it
        # (an empty node differs in every bucket): exchanges wait for it.
        self.synced = False
        self._sending: set[bytes] = set()  # members our buckets are on their way to

    async def run_forever(self) -> None:
        """A digest exchange with a random member every ``INTERVAL`` (randomised)."""
        while True:
            await asyncio.sleep(INTERVAL * random.uniform(0.5, 1.5))
            members = nodes(self.channel.members)  # a tool member holds no sessions
            if members and self.synced:
                await self.exchange(random.choice(members))

    async def exchange(self, member: Member) -> None:
        """Send our digests to ``member``; it answers with what differs."""
        self.counters.anti_entropy_rounds += 1
        digest = Message(Kind.DIGEST, buckets=list(self.sessions.store.buckets))
        with contextlib.suppress(ChannelError):
            await send_acknowledged(self.channel, [member], [digest])

    async def answer_digest(self, member: Member, theirs: list[int]) -> None:
        """``member`` sent its digests: send it ours of the buckets that differ (SYNC).

        Not while our buckets are still on their way to ``member``: its digests
        differ only because they have not all arrived, and answering again resent
        them all. With 100,000 sessions an answer outlasts the ~5 s between rounds
        (and a gap asks at once), so the answers piled up until no exchange ended
        (bench/scaling: an 8-node join that never settled). It asks again later.
        """
        if not self.synced:
            return  # still receiving the cluster's state: nothing useful to compare yet
        if member.id in self._sending:
            return
        ours = self.sessions.store.buckets
        differing = {i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b}
        if differing:
            await self.send_buckets(member, differing, Kind.SYNC)

    def repair(self, changes: list[Change], dead: list[tuple[str, int]]) -> None:
        """Merge a SYNC or RECORDS message; count the sessions when it changed anything."""
        before = list(self.sessions.store.buckets)
        self.counters.bad_messages += self.sessions.merge_remote(changes, dead)
        if self.sessions.store.buckets != before:
            self.counters.sessions_repaired += len(changes)

    async def send_buckets(self, member: Member, buckets: set[int], kind: Kind) -> None:
        """Our sessions (and dead ids) of ``buckets``, in acknowledged chunks.

        After a long partition or against an empty node a bucket exchange can be
        most of the store. A SYNC's last chunk names the buckets, which asks the
        peer to answer with its own (RECORDS).
        """
        if member.id in self._sending:
            return  # an answer is on its way to it: see answer_digest
        self._sending.add(member.id)
        try:
            await self._send_buckets(member, buckets, kind)
        finally:
            self._sending.discard(member.id)

    async def _send_buckets(self, member: Member, buckets: set[int], kind: Kind) -> None:
        records = self.sessions.store.in_buckets(buckets)
        tombstones = self.sessions.tombstones.items()
        dead = [(t, s) for t, (s, _) in tombstones if bucket_of(t) in buckets]
        size = self.config.manager.send_all_sessions_size
        messages = (
            Message(
                kind,
                changes=[snapshot(r) for r in batch],
                dead=dead if last else [],
                buckets=sorted(buckets) if kind is Kind.SYNC and last else [],
            )
            for _, batch, last in chunked(records, size)
        )
        with contextlib.suppress(ChannelError):
            await send_acknowledged(self.channel, [member], messages)
