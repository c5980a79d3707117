"""An in-memory network of channels, for tests: deterministic, with faults on demand.

:class:`InMemoryNetwork` makes :class:`InMemoryChannel` objects that satisfy the
:class:`~.api.Channel` protocol, so a manager runs over it unchanged (as
memberlist's delegates run over its mock transport). There are no sockets and no
timers: a message in flight is delivered by a callback of the event loop, chosen
by a random generator seeded by the network's ``seed``, so the same seed and the
same sends give the same deliveries. Faults are set on the network::

    network = InMemoryNetwork(seed=7)
    a, b = network.channel(config_a), network.channel(config_b)
    await a.start(); await b.start()          # each is now a member of the other
    network.drop = 0.2                         # and duplicate, reorder, delay
    network.partition([a], [b])                # messages across groups are lost
    network.heal()
    await network.settle()                     # until nothing is in flight

Send semantics are those of :class:`~.group.GroupChannel`: with ASYNCHRONOUS (or
without USE_ACK) ``send`` returns at once; with USE_ACK it returns once every
destination received the message (with SYNC_ACK: once its listeners ran), and a
destination that did not get it (dropped, partitioned, gone, or its listener
failed under SYNC_ACK) is named in a :class:`~.errors.ChannelError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from ..config import ClusterConfig
from . import options as send_options
from .api import Channel, ChannelStats, MembershipListener, MessageListener, PeerTraffic
from .application import TOOL_ROUTE
from .errors import ChannelError, RemoteProcessError
from .interceptors.base import ChannelMessage
from .member import Member

logger = logging.getLogger("clustersession.channel.testing")

ENVELOPE_BYTES: Final = 64
"""What GroupChannel keeps of ``receiver.max_message_size`` for its envelope."""

EventKind = Literal["delivered", "dropped", "duplicated", "delayed"]


class NetworkNotSettled(RuntimeError):
    """:meth:`InMemoryNetwork.settle` ran out of loop iterations with work left."""


@dataclass(frozen=True, slots=True)
class NetworkEvent:
    """One thing the network did with a message (see :attr:`InMemoryNetwork.history`).

    ``number`` counts the messages sent on the network, from 1; a duplicate keeps
    the number of its original. ``reason`` says why a message was dropped.
    """

    kind: EventKind
    number: int
    sender: Member
    receiver: Member
    reason: str = ""


@dataclass(slots=True)
class _Traffic:
    """Mutable counters behind one :class:`PeerTraffic`."""

    messages_sent: int = 0
    bytes_sent: int = 0
    failed_sends: int = 0
    acks: int = 0
    messages_received: int = 0
    bytes_received: int = 0

    def frozen(self) -> PeerTraffic:
        return PeerTraffic(
            messages_sent=self.messages_sent,
            bytes_sent=self.bytes_sent,
            failed_sends=self.failed_sends,
            acks=self.acks,
            messages_received=self.messages_received,
            bytes_received=self.bytes_received,
        )


@dataclass(slots=True)
class _InFlight:
    """A message on its way to one receiver."""

    number: int
    sender: InMemoryChannel
    receiver: InMemoryChannel
    payload: bytes
    options: int
    # Resolved when the sender may return: None for sends nobody waits for.
    ack: asyncio.Future[None] | None
    held: int = 0  # loop iterations it still waits (a delay)
    duplicate: bool = False
    delayed: bool = False  # a delay is drawn once per message, so each one arrives


class InMemoryChannel:
    """A member of an :class:`InMemoryNetwork`; a :class:`~.api.Channel`.

    Made by :meth:`InMemoryNetwork.channel`. Its member id is drawn from the
    network's seed; its host is ``"memory"`` and its port its creation index.
    """

    def __init__(
        self, network: InMemoryNetwork, config: ClusterConfig, index: int, *, tool: bool = False
    ) -> None:
        self.config = config
        self._network = network
        self._local = Member(
            network.rng.randbytes(16),
            "memory",
            index,
            TOOL_ROUTE if tool else config.jvm_route,
            config.membership.domain,
            0.0,
        )
        self._members: dict[bytes, Member] = {}
        self._listeners: list[MessageListener] = []
        self._membership_listeners: list[MembershipListener] = []
        self._peers: dict[bytes, _Traffic] = {}
        self.counters: dict[str, int] = {
            "messages_received": 0,
            "bytes_received": 0,
            "members_added": 0,
            "members_removed": 0,
            "send_failures": 0,
        }
        self.alive = False
        """Started and neither stopped nor killed: it sends, receives and is a member."""

    # -- the Channel protocol ------------------------------------------------------

    @property
    def local(self) -> Member:
        """This member; ``started_at`` orders channels by when they started."""
        return self._local

    @property
    def members(self) -> list[Member]:
        """The other live members, oldest first."""
        return sorted(self._members.values(), key=lambda m: (m.started_at, m.id))

    def add_listener(self, listener: MessageListener) -> None:
        """Call ``listener(message)`` for every message received (it may be async)."""
        self._listeners.append(listener)

    def add_membership_listener(self, listener: MembershipListener) -> None:
        """Tell ``listener`` about members added and removed."""
        self._membership_listeners.append(listener)

    async def start(self) -> None:
        """Join: become a member of every live channel of the network (same domain)."""
        if not self.alive:
            self._network._join(self)

    async def stop(self) -> None:
        """Leave: the others are told ``"left the group"``; messages in flight still arrive."""
        if self.alive:
            self._network._leave(self, "left the group", crashed=False)

    async def send(
        self, members: Iterable[Member] | None, payload: bytes, options: int | None = None
    ) -> None:
        """Send ``payload`` to ``members`` (``None``: every member), as GroupChannel does."""
        opts = send_options.check(self.config.channel_send_options if options is None else options)
        limit = self.config.receiver.max_message_size - ENVELOPE_BYTES
        if len(payload) > limit:
            raise ValueError(
                f"message of {len(payload)} bytes exceeds the limit of {limit} bytes "
                "(receiver.max_message_size, minus the envelope)"
            )
        targets = self.members if members is None else list(members)
        if not targets:
            return
        # Only a synchronous acknowledged send waits (options 2 and 6); 8, 10, 14 are
        # queued and 0 is written without an acknowledgement, as in GroupChannel.
        wait = bool(opts & send_options.USE_ACK) and not opts & send_options.ASYNCHRONOUS
        acks = [self._network._post(self, member, payload, opts, wait) for member in targets]
        if not wait:
            return
        results = await asyncio.gather(*acks, return_exceptions=True)
        failed: dict[Member, BaseException] = {}
        for member, result in zip(targets, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                failed[member] = result
        if failed:
            self.counters["send_failures"] += len(failed)
            raise ChannelError(failed)

    def stats(self) -> ChannelStats:
        """Totals and per-peer traffic (by member id)."""
        return ChannelStats(
            messages_received=self.counters["messages_received"],
            bytes_received=self.counters["bytes_received"],
            members_added=self.counters["members_added"],
            members_removed=self.counters["members_removed"],
            send_failures=self.counters["send_failures"],
            members=len(self._members),
            peers={peer: traffic.frozen() for peer, traffic in self._peers.items()},
        )

    # -- used by the network -------------------------------------------------------

    def _traffic(self, peer: Member) -> _Traffic:
        traffic = self._peers.get(peer.id)
        if traffic is None:
            traffic = self._peers[peer.id] = _Traffic()
        return traffic

    def _added(self, member: Member) -> None:
        self._members[member.id] = member
        self.counters["members_added"] += 1
        for listener in self._membership_listeners:
            try:
                listener.member_added(member)
            except Exception:  # as GroupChannel: one listener must not stop the others
                logger.exception("membership listener failed")

    def _removed(self, member: Member, reason: str) -> None:
        if self._members.pop(member.id, None) is None:
            return
        self.counters["members_removed"] += 1
        for listener in self._membership_listeners:
            try:
                listener.member_disappeared(member, reason)
            except Exception:
                logger.exception("membership listener failed")

    async def _deliver(self, message: ChannelMessage) -> None:
        traffic = self._traffic(message.sender)
        traffic.messages_received += 1
        traffic.bytes_received += len(message.payload)
        self.counters["messages_received"] += 1
        self.counters["bytes_received"] += len(message.payload)
        for listener in self._listeners:
            result = listener(message)
            if inspect.isawaitable(result):
                await result

    def __repr__(self) -> str:
        return f"InMemoryChannel({self._local})"


class InMemoryNetwork:
    """Channels that reach each other through memory, with seeded faults.

    Fault settings (probabilities in [0, 1], drawn per message and receiver at
    delivery time, so they may be changed between sends):

    * ``drop``: the message is lost (an acknowledged send fails for that member);
    * ``duplicate``: it is delivered, and a copy later;
    * ``reorder``: the next delivery is any message in flight rather than the oldest;
    * ``delay``: a message is held back for 1 to ``max_delay`` loop iterations.

    :meth:`partition` and :meth:`heal` cut and restore links; :meth:`kill` makes a
    channel vanish without a leave. :attr:`history` records every delivery and loss.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        drop: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        delay: float = 0.0,
        max_delay: int = 5,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        """The network's only source of chance (member ids, faults, delivery order)."""
        self.drop = drop
        self.duplicate = duplicate
        self.reorder = reorder
        self.delay = delay
        self.max_delay = max_delay
        self.history: list[NetworkEvent] = []
        self.record_history = True
        """Keep :attr:`history` (turn off for long runs that do not read it)."""
        self._channels: list[InMemoryChannel] = []
        self._in_flight: list[_InFlight] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._groups: dict[bytes, int] | None = None  # member id -> partition group
        self._numbers = 0
        self._starts = 0
        self._tick_scheduled = False
        # Members' start times: one base, plus the start order, so "oldest first" is
        # the order channels started in, and ages still read sensibly.
        self._epoch = time.time()

    # -- making and breaking ---------------------------------------------------------

    def channel(self, config: ClusterConfig, *, tool: bool = False) -> InMemoryChannel:
        """A new channel on this network (not started) for ``config``'s route and domain
        (``tool=True``: a tool member's, see :mod:`.application`)."""
        made = InMemoryChannel(self, config, len(self._channels) + 1, tool=tool)
        self._channels.append(made)
        return made

    @property
    def channels(self) -> list[InMemoryChannel]:
        """Every channel made, in creation order."""
        return list(self._channels)

    def partition(self, *groups: Iterable[InMemoryChannel | Member]) -> None:
        """Cut the links between groups; a channel in no group is a group of its own.

        Membership is unchanged (a partition shorter than the failure detector's
        patience): messages across groups are lost, and acknowledged sends fail.
        """
        assignment: dict[bytes, int] = {}
        for number, group in enumerate(groups):
            for item in group:
                member = item.local if isinstance(item, InMemoryChannel) else item
                assignment[member.id] = number
        self._groups = assignment

    def heal(self) -> None:
        """Restore every link cut by :meth:`partition`."""
        self._groups = None

    def connected(self, a: Member, b: Member) -> bool:
        """Whether a message from ``a`` can reach ``b`` (ignoring random faults)."""
        if self._groups is None:
            return True
        # A channel in no group is alone: -1 - its port is a group nobody shares.
        return self._groups.get(a.id, -1 - a.port) == self._groups.get(b.id, -1 - b.port)

    def kill(self, channel: InMemoryChannel) -> None:
        """``channel`` crashes: it sends nothing more, its messages in flight are lost,
        and the others are told it ``"failed"`` (no leave message)."""
        if channel.alive:
            self._leave(channel, "failed", crashed=True)

    # -- running ---------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Messages sent and not yet delivered or lost, plus deliveries running."""
        return len(self._in_flight) + len(self._deliveries)

    async def settle(self, max_iterations: int = 100_000) -> None:
        """Run the loop until nothing is in flight and no callback is ready to run.

        Timers (``asyncio.sleep(t > 0)``) are not waited for. Raises
        :class:`NetworkNotSettled` after ``max_iterations`` loop iterations (a
        livelock, such as two nodes repairing each other forever).
        """
        loop = asyncio.get_running_loop()
        quiet = 0
        for _ in range(max_iterations):
            await asyncio.sleep(0)
            if self.in_flight:
                quiet = 0
                continue
            # CPython's loop keeps its runnable callbacks in ``_ready``: empty means
            # every task waits on something only a timer or I/O could bring. Another
            # loop: a run of quiet iterations longer than any chain of callbacks here.
            ready = getattr(loop, "_ready", None)
            quiet += 1
            if (not ready) if ready is not None else quiet >= 100:
                return
        raise NetworkNotSettled(
            f"network (seed {self.seed}) still busy after {max_iterations} loop iterations: "
            f"{self.in_flight} message(s) in flight"
        )

    # -- inside ----------------------------------------------------------------------

    def _live(self) -> list[InMemoryChannel]:
        return [c for c in self._channels if c.alive]

    def _join(self, joining: InMemoryChannel) -> None:
        self._starts += 1
        local = joining.local
        joining._local = Member(
            local.id, local.host, local.port, local.route, local.domain, self._epoch + self._starts
        )
        peers = [c for c in self._live() if c.local.domain == joining.local.domain]
        joining.alive = True
        for peer in sorted(peers, key=lambda c: c.local.started_at):  # oldest first
            peer._added(joining.local)
        for peer in sorted(peers, key=lambda c: c.local.started_at):
            joining._added(peer.local)

    def _leave(self, leaving: InMemoryChannel, reason: str, *, crashed: bool) -> None:
        leaving.alive = False
        if crashed:  # what it had on the wire dies with it
            for message in [m for m in self._in_flight if m.sender is leaving]:
                self._lose(message, "sender crashed")
        for peer in self._live():
            peer._removed(leaving.local, reason)
        for member in leaving.members:
            leaving._removed(member, reason if not crashed else "this member crashed")

    def _post(
        self, sender: InMemoryChannel, member: Member, payload: bytes, options: int, wait: bool
    ) -> asyncio.Future[None]:
        """Put a message on the wire; the future is resolved when the sender may go on."""
        loop = asyncio.get_running_loop()
        ack: asyncio.Future[None] = loop.create_future()
        self._numbers += 1
        traffic = sender._traffic(member)
        traffic.messages_sent += 1
        traffic.bytes_sent += len(payload)
        receiver = next((c for c in self._channels if c.local.id == member.id), None)
        if receiver is None or not sender.alive:
            ack.set_exception(ConnectionError("no such member on this network"))
            traffic.failed_sends += 1
            return ack
        message = _InFlight(
            self._numbers, sender, receiver, payload, options, ack if wait else None
        )
        if not wait:
            ack.set_result(None)  # nobody waits, but the caller gets a done future
        self._in_flight.append(message)
        self._schedule(loop)
        return ack

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._tick_scheduled:
            self._tick_scheduled = True
            loop.call_soon(self._tick)

    def _tick(self) -> None:
        """One loop iteration of the wire: deliver (or lose) at most one message."""
        self._tick_scheduled = False
        waiting = self._in_flight
        if not waiting:
            return
        for message in waiting:
            if message.held:
                message.held -= 1
        ready = [m for m in waiting if not m.held]
        if ready:
            rng = self.rng
            message = rng.choice(ready) if rng.random() < self.reorder else ready[0]
            if not message.delayed and rng.random() < self.delay:
                message.held, message.delayed = rng.randint(1, self.max_delay), True
                self._note("delayed", message)
            else:
                waiting.remove(message)
                self._arrive(message)
        if self._in_flight:
            self._schedule(asyncio.get_running_loop())

    def _arrive(self, message: _InFlight) -> None:
        sender, receiver = message.sender.local, message.receiver.local
        if not message.receiver.alive:
            self._lose(message, "receiver is gone")
            return
        if not self.connected(sender, receiver):
            self._lose(message, "partitioned")
            return
        if self.rng.random() < self.drop:
            self._lose(message, "dropped")
            return
        if not message.duplicate and self.rng.random() < self.duplicate:  # one copy at most
            # The copy is nobody's to wait for, and comes later (it queues at the end).
            self._in_flight.append(dataclasses.replace(message, ack=None, duplicate=True))
            self._note("duplicated", message)
        self._note("delivered", message)
        sync = bool(message.options & send_options.SYNC_ACK)
        if message.ack is not None and not sync:
            # A plain USE_ACK is acknowledged on receipt, before the listeners run.
            self._acked(message)
        task = asyncio.get_running_loop().create_task(self._run_listeners(message, sync))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _run_listeners(self, message: _InFlight, sync: bool) -> None:
        incoming = ChannelMessage(message.sender.local, message.payload, message.options)
        try:
            await message.receiver._deliver(incoming)
        except Exception as exc:
            logger.exception("listener failed on a message from %s", message.sender.local)
            if message.ack is not None and sync:
                error = RemoteProcessError(f"{type(exc).__name__}: {exc}")
                self._failed(message, error)
            return
        if message.ack is not None and sync:
            self._acked(message)

    def _acked(self, message: _InFlight) -> None:
        assert message.ack is not None
        if not message.ack.done():
            message.ack.set_result(None)
            message.sender._traffic(message.receiver.local).acks += 1

    def _failed(self, message: _InFlight, error: BaseException) -> None:
        message.sender._traffic(message.receiver.local).failed_sends += 1
        if message.ack is not None and not message.ack.done():
            message.ack.set_exception(error)

    def _lose(self, message: _InFlight, reason: str) -> None:
        if message in self._in_flight:
            self._in_flight.remove(message)
        self._note("dropped", message, reason)
        self._failed(message, ConnectionError(f"message {message.number} {reason}"))

    def _note(self, kind: EventKind, message: _InFlight, reason: str = "") -> None:
        if self.record_history:
            event = NetworkEvent(
                kind, message.number, message.sender.local, message.receiver.local, reason
            )
            self.history.append(event)


def deliveries(history: Sequence[NetworkEvent]) -> list[tuple[str, str, int]]:
    """``(sender route, receiver route, number)`` of each delivery, in order."""
    return [(e.sender.route, e.receiver.route, e.number) for e in history if e.kind == "delivered"]


if TYPE_CHECKING:
    # Checked by mypy, never run: an InMemoryChannel is a Channel.
    def _is_a_channel(channel: InMemoryChannel) -> Channel:
        return channel
