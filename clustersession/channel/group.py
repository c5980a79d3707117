"""``GroupChannel``: the group communication channel (Tomcat's tribes), on asyncio.

It knows nothing of sessions or HTTP: it moves opaque byte payloads between the
members of a group and says who the members are. Layers, top to bottom::

    listeners  <- GroupChannel ->  interceptors (config order)  ->  coordinator
                                                                     |-- senders (one per member)
    receiver (incoming frames) --------------------------------------'
    membership (multicast heartbeats | static list | DNS) + failure detector

One channel per process; it is started and stopped on the event loop that uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from ..config import ClusterConfig
from . import options as send_options
from .errors import ChannelError, FrameError
from .interceptors.base import ChannelMessage, Interceptor
from .interceptors.dispatch import DispatchInterceptor
from .interceptors.failure_detector import FailureDetector
from .member import Member, new_member_id
from .membership import heartbeat as hb
from .membership.discovery import DnsDiscovery, StaticDiscovery
from .membership.multicast import MulticastMembership
from .membership.table import MemberTable
from .security import Keys
from .transport.connection import Connection, member_record
from .transport.frames import Envelope, MessageType
from .transport.receiver import Receiver
from .transport.sender import PeerSender

logger = logging.getLogger("clustersession.channel")

MessageListener = Callable[[ChannelMessage], Awaitable[None] | None]


class MembershipListener(Protocol):
    """Told when members come and go (Tomcat's MembershipListener)."""

    def member_added(self, member: Member) -> None:
        """``member`` joined (verified)."""

    def member_disappeared(self, member: Member, reason: str) -> None:
        """``member`` left, or failed verification; ``reason`` says which."""


class _RateLimitedLog:
    """At most one warning per ``interval`` per key; the rest are counted."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, float("-inf")) < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        suffix = f" ({suppressed} more since the last report)" if suppressed else ""
        logger.warning(message + suffix, *args)


class _Top(Interceptor):
    """The top of the stack: hands received messages to the channel's listeners."""

    name = "top"

    def __init__(self, channel: GroupChannel) -> None:
        super().__init__()
        self.channel = channel

    async def message_received(self, message: ChannelMessage) -> None:
        await self.channel._deliver(message)


class _Coordinator(Interceptor):
    """The bottom of the stack: sends to every destination in parallel."""

    name = "coordinator"

    def __init__(self, channel: GroupChannel) -> None:
        super().__init__()
        self.channel = channel

    async def send(self, members: Sequence[Member], payload: bytes, options: int) -> None:
        await self.channel._transmit(members, payload, options)


class GroupChannel:
    """A member of a group: sends to members, receives from them, tracks membership.

    ``config`` is the cluster configuration (membership, receiver, sender and
    interceptor sections, ``secret``, ``jvm_route``). Without a ``secret`` the
    channel refuses to start unless ``config.allow_insecure`` is true.
    """

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.keys = Keys(config.secret, encrypt="encrypt" in config.interceptors.order)
        self.table = MemberTable()
        self.local = Member(
            new_member_id(), "", 0, config.jvm_route, config.membership.domain, time.time()
        )
        self.incarnation = 0
        self._heartbeat_counter = 0
        self._senders: dict[bytes, PeerSender] = {}
        self._received: dict[bytes, dict[str, int]] = {}
        self._probing: set[tuple[str, int]] = set()
        self._self_addresses: set[tuple[str, int]] = set()
        self._listeners: list[MessageListener] = []
        self._membership_listeners: list[MembershipListener] = []
        self._log = _RateLimitedLog()
        self._background: list[asyncio.Task[None]] = []
        self._started = False
        self.counters: dict[str, int] = {
            "messages_received": 0,
            "bytes_received": 0,
            "members_added": 0,
            "members_removed": 0,
            "refused_frames": 0,
            "refused_heartbeats": 0,
            "send_failures": 0,
        }
        self.receiver = Receiver(
            config.receiver,
            self.keys,
            local=lambda: self.local,
            handler=self._handle_frame,
            on_accepted=self._accepted,
            on_refused=self._frame_refused,
        )
        ic = config.interceptors
        self.detector = FailureDetector(
            ic.failure_detector, config.membership, self, enabled="failure_detector" in ic.order
        )
        self.dispatch = DispatchInterceptor(ic.dispatch)
        self._stack = self._build_stack()
        self.multicast: MulticastMembership | None = None

    def _build_stack(self) -> list[Interceptor]:
        available: dict[str, Interceptor] = {
            "failure_detector": self.detector,
            "dispatch": self.dispatch,
        }
        # "encrypt" is done per connection by the transport (every frame, probes too).
        layers: list[Interceptor] = [_Top(self)]
        layers += [available[name] for name in self.config.interceptors.order if name in available]
        layers.append(_Coordinator(self))
        for upper, lower in itertools.pairwise(layers):
            upper.below, lower.above = lower, upper
        return layers

    # -- public API ------------------------------------------------------------

    def add_listener(self, listener: MessageListener) -> None:
        """Call ``listener(message)`` for every message received (it may be async)."""
        self._listeners.append(listener)

    def add_membership_listener(self, listener: MembershipListener) -> None:
        """Tell ``listener`` about members added and removed."""
        self._membership_listeners.append(listener)

    @property
    def members(self) -> list[Member]:
        """The current members (without this one), oldest first."""
        return self.table.members()

    async def start(self) -> None:
        """Bind the receiver, start membership and background work."""
        if self._started:
            return
        if not self.keys.enabled and not self.config.allow_insecure:
            raise RuntimeError(
                "refusing to start an unauthenticated cluster channel: set secret "
                "(CLUSTERSESSION_SECRET), or allow_insecure = true on a trusted network"
            )
        if not self.keys.enabled:
            logger.warning("cluster traffic is NOT authenticated (allow_insecure = true)")
        port = await self.receiver.start()
        host = "" if self.config.receiver.address == "auto" else self.config.receiver.address
        self.local = Member(
            self.local.id, host, port, self.local.route, self.local.domain, self.local.started_at
        )
        for layer in reversed(self._stack):
            await layer.start()
        if self.detector not in self._stack:
            await self.detector.start()  # its silence watcher runs in every configuration
        membership = self.config.membership
        if membership.kind == "multicast":
            self.multicast = MulticastMembership(
                membership,
                self.keys,
                local_id=self.local.id,
                make_heartbeat=self._make_heartbeat,
                on_heartbeat=self._heartbeat_received,
                on_refused=self._heartbeat_refused,
                replay_window=max(10.0, 3 * membership.drop_time / 1000),
            )
            await self.multicast.start()
        else:
            self._background.append(
                asyncio.get_running_loop().create_task(
                    self._probe_forever(), name="clustersession-probe"
                )
            )
        self._started = True
        logger.info("channel started: %s (membership %s)", self.local, membership.kind)

    async def stop(self) -> None:
        """Announce that we leave, close every connection, stop background work."""
        if not self._started:
            return
        self._started = False
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        await self.dispatch.stop()
        for sender in self._senders.values():
            sender.send_leave()
        if self.multicast is not None:
            await self.multicast.stop()
        for layer in self._stack:
            if layer is not self.dispatch:
                await layer.stop()
        if self.detector not in self._stack:
            await self.detector.stop()
        await asyncio.gather(*(s.close() for s in self._senders.values()), return_exceptions=True)
        self._senders.clear()
        await self.receiver.stop()
        for member in self.table.members():
            self.table.remove(member.id)
        logger.info("channel stopped: %s", self.local)

    async def send(
        self, members: Iterable[Member] | None, payload: bytes, options: int | None = None
    ) -> None:
        """Send ``payload`` to ``members`` (``None``: every member) with send ``options``.

        ``options`` defaults to the config's ``channel_send_options``. With the
        ASYNCHRONOUS bit it returns once queued; otherwise it returns when every
        destination has the message (USE_ACK: acknowledged; with SYNC_ACK: after
        the peer's listeners ran) and raises :class:`ChannelError` naming the
        members that failed. A payload over the size limit raises ``ValueError``.
        """
        opts = send_options.check(self.config.channel_send_options if options is None else options)
        limit = self.config.receiver.max_message_size - 64  # room for the envelope
        if len(payload) > limit:
            raise ValueError(
                f"message of {len(payload)} bytes exceeds the limit of {limit} bytes "
                "(receiver.max_message_size, minus the envelope)"
            )
        targets = self.table.members() if members is None else list(members)
        if not targets:
            return
        await self._stack[0].send(targets, payload, opts)

    def stats(self) -> dict[str, Any]:
        """Counters: channel totals, per-interceptor, and per peer."""
        peers = {str(sender.member): sender.stats.as_dict() for sender in self._senders.values()}
        layers: dict[str, float | int] = {}
        for layer in self._stack:
            layers.update(layer.stats())
        return {**self.counters, **layers, "members": len(self.table), "peers": peers}

    # -- membership ------------------------------------------------------------

    def sender_for(self, member: Member) -> PeerSender:
        """The sender to ``member``, created on first use."""
        sender = self._senders.get(member.id)
        if sender is None:
            sender = PeerSender(
                member,
                keys=self.keys,
                local=self.local,
                max_message_size=self.config.receiver.max_message_size,
                on_lost=self._connection_lost,
            )
            self._senders[member.id] = sender
        return sender

    def add_member(self, member: Member) -> None:
        """Make ``member`` a member (after verification) and tell the listeners."""
        if not self._started or member.id == self.local.id or not self.table.add(member):
            return
        self.counters["members_added"] += 1
        logger.info("member added: %s", member)
        for listener in self._membership_listeners:
            try:
                listener.member_added(member)
            except Exception:
                logger.exception("membership listener failed")

    def forget_sender(self, member: Member) -> None:
        """Close and drop the sender to ``member`` unless it is a member."""
        if member.id in self.table:
            return
        sender = self._senders.pop(member.id, None)
        if sender is not None:
            self._background_task(sender.close())

    def remove_member(self, member: Member, reason: str) -> None:
        """Drop ``member`` and tell the listeners."""
        if self.table.remove(member.id) is None:
            return
        self.counters["members_removed"] += 1
        logger.info("member removed: %s (%s)", member, reason)
        sender = self._senders.pop(member.id, None)
        if sender is not None:
            task = asyncio.get_running_loop().create_task(sender.close())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        for listener in self._membership_listeners:
            try:
                listener.member_disappeared(member, reason)
            except Exception:
                logger.exception("membership listener failed")

    def _make_heartbeat(self, leaving: bool) -> hb.Heartbeat:
        self._heartbeat_counter += 1
        return hb.Heartbeat(
            domain=self.config.membership.domain,
            member=self.local,
            incarnation=self.incarnation,
            leaving=leaving,
            timestamp_ms=int(time.time() * 1000),
            counter=self._heartbeat_counter,
        )

    def _heartbeat_received(self, heartbeat: hb.Heartbeat) -> None:
        member = heartbeat.member
        if heartbeat.leaving:
            self.remove_member(member, "left the group")
            return
        if member.id in self.table:
            self.table.heard(member.id, incarnation=heartbeat.incarnation)
        else:
            self.detector.admit(member)

    def _heartbeat_refused(self, source: str, reason: str) -> None:
        self.counters["refused_heartbeats"] += 1
        self._log.warning("hb:" + source, "refused heartbeat from %s: %s", source, reason)

    def _frame_refused(self, source: str, reason: str) -> None:
        self.counters["refused_frames"] += 1
        self._log.warning("frame:" + source, "closed connection from %s: %s", source, reason)

    def _connection_lost(self, member: Member, reason: str) -> None:
        if self._started:
            self.detector.suspect(member, f"connection lost ({reason})")

    def _accepted(self, conn: Connection) -> None:
        peer = conn.peer
        if peer is None or peer.id == self.local.id:
            return
        if peer.domain != self.local.domain:
            conn.close()
            return
        # An authenticated peer that reached us over TCP may be added before its
        # first heartbeat arrives (Tomcat's TcpFailureDetector does the same).
        self.detector.admit(peer)

    async def _probe_forever(self) -> None:
        """Static/DNS membership: find members at the listed addresses, ping the known."""
        discovery: StaticDiscovery | DnsDiscovery
        if self.config.membership.kind == "static":
            discovery = StaticDiscovery(self.config.membership)
        else:
            discovery = DnsDiscovery(self.config.membership, self.config.receiver.port)
        period = self.config.membership.frequency / 1000
        while True:
            timeout = self.detector.timeout  # stretched while this node is unhealthy
            known = {(m.host, m.port) for m in self.table.members()}
            for host, port in await discovery.addresses():
                address = (host, port)
                if address in known or address in self._probing or self._is_self(host, port):
                    continue
                self._spawn_probe(host, port, timeout)
            for member in self.table.members():
                self._spawn_ping(member, timeout)
            await asyncio.sleep(period)

    def _is_self(self, host: str, port: int) -> bool:
        if (host, port) in self._self_addresses:
            return True
        return port == self.local.port and host in (
            self.local.host,
            self.config.receiver.address,
            "127.0.0.1",
            "localhost",
        )

    def _spawn_probe(self, host: str, port: int, timeout: float) -> None:
        async def probe() -> None:
            self._probing.add((host, port))
            placeholder = Member(bytes(16), host, port)
            sender = PeerSender(
                placeholder,
                keys=self.keys,
                local=self.local,
                max_message_size=self.config.receiver.max_message_size,
                on_lost=lambda m, r: None,
            )
            try:
                found = await sender.ping(timeout)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                return
            finally:
                await sender.close()
                self._probing.discard((host, port))
            if found.id == self.local.id:
                self._self_addresses.add((host, port))  # e.g. our own DNS record
            elif found.domain == self.local.domain:
                self.detector.admit(
                    Member(found.id, host, port, found.route, found.domain, found.started_at)
                )

        self._background_task(probe())

    def _spawn_ping(self, member: Member, timeout: float) -> None:
        async def ping() -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
                await self.sender_for(member).ping(timeout)
                self.table.heard(member.id)

        self._background_task(ping())

    def _background_task(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    # -- traffic ---------------------------------------------------------------

    async def _transmit(self, members: Sequence[Member], payload: bytes, options: int) -> None:
        senders = [self.sender_for(m) for m in members]
        if not options & send_options.USE_ACK and all(s.writable for s in senders):
            # Nothing to wait for (the usual asynchronous replication): write to every
            # socket now, rather than one task per destination a loop iteration later.
            for sender in senders:
                sender.send_nowait(payload, options)
            return
        timeout = self.config.sender.timeout / 1000
        retries = self.config.sender.max_retry_attempts
        results = await asyncio.gather(
            *(s.send(payload, options, timeout=timeout, retries=retries) for s in senders),
            return_exceptions=True,
        )
        failed: dict[Member, BaseException] = {}
        for member, result in zip(members, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                failed[member] = result
        if failed:
            self.counters["send_failures"] += len(failed)
            # Here, below the dispatch queue, so failed async sends are verified too.
            for member, error in failed.items():
                self.detector.send_failed(member, error)
            raise ChannelError(failed)

    async def _handle_frame(self, conn: Connection, envelope: Envelope) -> None:
        peer = conn.peer
        assert peer is not None
        if envelope.sender != peer.id:
            raise FrameError("envelope sender differs from the connection's peer")
        self.table.heard(peer.id)
        kind = envelope.type
        if kind is MessageType.DATA:
            await self._handle_data(conn, peer, envelope)
        elif kind in (MessageType.PING, MessageType.SUSPECT):
            if kind is MessageType.SUSPECT:
                self._refute(peer)
            conn.write(
                Envelope(
                    MessageType.PONG,
                    self.local.id,
                    envelope.message_id,
                    0,
                    member_record(self.local),
                )
            )
        elif kind is MessageType.LEAVE:
            self.remove_member(peer, "left the group")
        else:
            raise FrameError(f"unexpected {kind.name} frame on an incoming connection")

    async def _handle_data(self, conn: Connection, peer: Member, envelope: Envelope) -> None:
        if not isinstance(envelope.payload, bytes):
            raise FrameError("DATA payload is not bytes")
        self.counters["messages_received"] += 1
        self.counters["bytes_received"] += len(envelope.payload)
        received = self._received.setdefault(peer.id, {"messages_received": 0, "bytes_received": 0})
        received["messages_received"] += 1
        received["bytes_received"] += len(envelope.payload)
        opts = envelope.options
        message = ChannelMessage(peer, envelope.payload, opts)
        # A plain USE_ACK was acknowledged by the receiver on reading the frame.
        after_processing = bool(opts & send_options.USE_ACK) and bool(opts & send_options.SYNC_ACK)
        try:
            await self._stack[-1].message_received(message)
        except Exception as exc:
            logger.exception("listener failed on a message from %s", peer)
            if after_processing:
                reply = Envelope(
                    MessageType.FAIL_ACK,
                    self.local.id,
                    envelope.message_id,
                    0,
                    f"{type(exc).__name__}: {exc}",
                )
                conn.write(reply)
            return
        if after_processing:
            conn.write(Envelope(MessageType.ACK, self.local.id, envelope.message_id, 0, None))

    def _refute(self, accuser: Member) -> None:
        self.incarnation += 1
        logger.info("suspected by %s: refuting (incarnation %d)", accuser, self.incarnation)
        if self.multicast is not None:
            self.multicast.send_now()

    async def _deliver(self, message: ChannelMessage) -> None:
        for listener in self._listeners:
            result = listener(message)
            if inspect.isawaitable(result):
                await result
