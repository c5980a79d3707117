"""Sending many sessions: in chunks, each acknowledged before the next goes.

State transfer, anti-entropy's bucket exchange and expiry on shutdown can each
be most of the store; chunks keep every message under the size limit, and the
ACK of one before the next paces the sender to the receiver (flow control) and
stops it when the receiver is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from ..channel import Channel, ChannelError, Member
from ..channel.options import USE_ACK
from . import wire

T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> Iterator[tuple[int, Sequence[T], bool]]:
    """``(index, chunk, last)`` for consecutive chunks of ``size``; no items: one empty chunk."""
    starts = range(0, max(len(items), 1), size)
    for index, start in enumerate(starts):
        yield index, items[start : start + size], start == starts[-1]


async def send_acknowledged(
    channel: Channel,
    members: list[Member] | None,
    messages: Iterable[wire.Message],
    *,
    on_failure: Callable[[ChannelError], None] | None = None,
) -> int:
    """Send ``messages`` in order, each acknowledged (USE_ACK) before the next; return how many.

    A :class:`ChannelError` ends the sending, unless ``on_failure`` is given: it is
    told, and the next message still goes to the members that remain.
    """
    sent = 0
    for message in messages:
        try:
            await channel.send(members, wire.encode(message), USE_ACK)
        except ChannelError as exc:
            if on_failure is None:
                raise
            on_failure(exc)
        sent += 1
    return sent
