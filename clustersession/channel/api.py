"""What a channel is to the floors above it: the ``Channel`` protocol and its typed stats.

Managers are typed against :class:`Channel`, not against the socket channel
(:class:`~.group.GroupChannel`), so the same manager runs over the in-memory
network of :mod:`.testing` in tests, as memberlist's delegate runs over its mock
transport.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .histogram import HistogramSnapshot
from .interceptors.base import ChannelMessage
from .member import Member

MessageListener = Callable[[ChannelMessage], Awaitable[None] | None]
"""Called with every message received; it may be a coroutine function."""


class MembershipListener(Protocol):
    """Told when members come and go (Tomcat's MembershipListener)."""

    def member_added(self, member: Member) -> None:
        """``member`` joined (verified)."""

    def member_disappeared(self, member: Member, reason: str) -> None:
        """``member`` left, or failed verification; ``reason`` says which."""


@dataclass(frozen=True, slots=True)
class PeerTraffic:
    """The traffic between this member and one peer."""

    messages_sent: int = 0
    bytes_sent: int = 0
    failed_sends: int = 0
    acks: int = 0
    mean_ack_ms: float = 0.0
    last_ack_ms: float = 0.0
    reconnects: int = 0
    messages_received: int = 0
    bytes_received: int = 0


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """A channel's counters: totals, per interceptor layer, and per peer."""

    messages_received: int = 0
    bytes_received: int = 0
    members_added: int = 0
    members_removed: int = 0
    refused_frames: int = 0
    refused_heartbeats: int = 0
    send_failures: int = 0
    members: int = 0
    layers: Mapping[str, float | int] = field(default_factory=dict)
    """Counters of the interceptors (dispatch queue, failure detector), by name."""
    peers: Mapping[bytes, PeerTraffic] = field(default_factory=dict)
    """Traffic per peer, by member id."""
    refused_by_reason: Mapping[str, int] = field(default_factory=dict)
    """``refused_frames`` by kind: ``auth``, ``oversize``, ``malformed``."""
    ack_latency: HistogramSnapshot | None = None
    """ACK round trips to every peer, in seconds (``None``: the channel does not time them)."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (status page): totals and layer counters flat, peers by name."""
        totals = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in _NOT_FLAT
        }
        return {**totals, **self.layers}


_NOT_FLAT = frozenset(("layers", "peers", "refused_by_reason", "ack_latency"))


class Channel(Protocol):
    """A member of a group that moves opaque payloads and says who the members are.

    ``send`` with the ASYNCHRONOUS option returns once the message is queued;
    otherwise it returns when every destination has it (USE_ACK), or has
    processed it (USE_ACK + SYNC_ACK), and raises
    :class:`~.errors.ChannelError` naming the members that failed.
    """

    @property
    def local(self) -> Member:
        """This member (its host and port are known once started)."""

    @property
    def members(self) -> list[Member]:
        """The current members, without this one, oldest first."""

    def add_listener(self, listener: MessageListener) -> None:
        """Call ``listener(message)`` for every message received."""

    def add_membership_listener(self, listener: MembershipListener) -> None:
        """Tell ``listener`` about members added and removed."""

    async def start(self) -> None:
        """Join the group."""

    async def stop(self) -> None:
        """Leave the group (the others are told), release everything."""

    async def send(
        self, members: Iterable[Member] | None, payload: bytes, options: int | None = None
    ) -> None:
        """Send ``payload`` to ``members`` (``None``: every member)."""

    def stats(self) -> ChannelStats:
        """Counters, for the status page and metrics."""
