"""``SenderPool``: the sender to each member, created on first use and closed with it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from ..histogram import Histogram
from ..member import Member
from ..security import Keys
from ..tasks import BackgroundTasks
from .sender import PeerSender


class SenderPool:
    """One :class:`PeerSender` per member id.

    ``local`` gives this member as the handshake presents it (its address is
    known only once the receiver listens); ``on_lost`` is told when an open
    connection to a member ends.
    """

    def __init__(
        self,
        keys: Keys,
        *,
        local: Callable[[], Member],
        max_message_size: int,
        on_lost: Callable[[Member, str], None],
        tasks: BackgroundTasks,
    ) -> None:
        self.keys = keys
        self.local = local
        self.max_message_size = max_message_size
        self.on_lost = on_lost
        self._tasks = tasks
        self._senders: dict[bytes, PeerSender] = {}
        self.ack_latency = Histogram()
        """Every ACK round trip to any member, in seconds (the metrics' histogram)."""

    def __iter__(self) -> Iterator[PeerSender]:
        return iter(list(self._senders.values()))

    def get(self, member: Member) -> PeerSender:
        """The sender to ``member``, created on first use."""
        sender = self._senders.get(member.id)
        if sender is None:
            sender = self._senders[member.id] = self.unpooled(member, on_lost=self.on_lost)
        return sender

    def unpooled(
        self, member: Member, *, on_lost: Callable[[Member, str], None] | None = None
    ) -> PeerSender:
        """A sender that is not kept: for probing an address not known to be a member."""
        return PeerSender(
            member,
            keys=self.keys,
            local=self.local(),
            max_message_size=self.max_message_size,
            on_lost=on_lost or (lambda _member, _reason: None),
            ack_latency=self.ack_latency,
        )

    def discard(self, member: Member) -> None:
        """Drop the sender to ``member`` and close it in the background."""
        sender = self._senders.pop(member.id, None)
        if sender is not None:
            self._tasks.spawn(sender.close(), f"clustersession-close-{member.short_id}")

    def send_leave(self) -> None:
        """Tell every connected peer that we leave (best effort, no waiting)."""
        for sender in self._senders.values():
            sender.send_leave()

    async def close_all(self) -> None:
        """Close every sender."""
        senders, self._senders = list(self._senders.values()), {}
        await asyncio.gather(*(s.close() for s in senders), return_exceptions=True)
