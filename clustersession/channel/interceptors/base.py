"""What an interceptor is: one layer of the channel's stack (Tomcat's ChannelInterceptor)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..member import Member


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """A message received from a member: its payload bytes and the send options."""

    sender: Member
    payload: bytes
    options: int


class Interceptor:
    """Passes sends down (towards the transport) and messages up (towards listeners).

    Subclasses override what they act on and call the same method of the base
    class to pass the rest on. The channel links the layers in config order:
    the first listed is the top, the first to see a send.
    """

    name = "interceptor"

    def __init__(self) -> None:
        self.below: Interceptor | None = None
        self.above: Interceptor | None = None

    async def send(self, members: Sequence[Member], payload: bytes, options: int) -> None:
        """Send ``payload`` to ``members``; raise ``ChannelError`` naming failures."""
        assert self.below is not None, "the bottom layer must override send()"
        await self.below.send(members, payload, options)

    async def message_received(self, message: ChannelMessage) -> None:
        """Pass a received message up."""
        assert self.above is not None, "the top layer must override message_received()"
        await self.above.message_received(message)

    async def start(self) -> None:
        """Start background work, if any."""

    async def stop(self) -> None:
        """Stop background work, if any."""

    def stats(self) -> dict[str, float | int]:
        """Counters for the status page."""
        return {}
