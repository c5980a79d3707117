"""``GroupChannel``: the group communication channel (Tomcat's tribes), on asyncio.

It knows nothing of sessions or HTTP: it moves opaque byte payloads between the
members of a group and says who the members are. Layers, top to bottom::

    listeners  <- GroupChannel ->  interceptors (config order)  ->  Coordinator
                                                                     |-- SenderPool (one per member)
    Receiver (incoming frames) ---------------------------------------'
    MembershipService (multicast heartbeats | static list | DNS) + FailureDetector

Only layers that act on messages are in the stack (today the dispatch queue).
The other names of ``interceptors.order`` are settings, as in Tomcat's
server.xml: ``failure_detector`` makes membership verify members over TCP
before adding or removing them, ``encrypt`` makes the transport encrypt every
frame of every connection (probes too).

One channel per process; it is started and stopped on the event loop that uses it.
"""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Iterable

from ..config import ClusterConfig
from . import options as send_options
from .api import ChannelStats, MembershipListener, MessageListener
from .application import TOOL_ROUTE
from .coordinator import Coordinator
from .interceptors.base import ChannelMessage, Interceptor
from .interceptors.dispatch import DispatchInterceptor
from .member import Member
from .membership.failure_detector import FailureDetector
from .membership.service import MembershipService
from .membership.table import MemberTable
from .ratelimit import RateLimitedLog
from .security import Keys
from .tasks import BackgroundTasks
from .transport.pool import SenderPool

logger = logging.getLogger("clustersession.channel")

__all__ = ["GroupChannel", "MembershipListener", "MessageListener"]


class _Top(Interceptor):
    """The top of the stack: hands received messages to the channel's listeners."""

    name = "top"

    def __init__(self, listeners: list[MessageListener]) -> None:
        super().__init__()
        self.listeners = listeners

    async def message_received(self, message: ChannelMessage) -> None:
        for listener in self.listeners:
            result = listener(message)
            if inspect.isawaitable(result):
                await result


class GroupChannel:
    """A member of a group: sends to members, receives from them, tracks membership.

    ``config`` is the cluster configuration (membership, receiver, sender and
    interceptor sections, ``secret``, ``jvm_route``). ``tool=True`` makes it a
    tool member (see :mod:`.application`): it announces no route. Without a ``secret`` the
    channel refuses to start unless ``config.allow_insecure`` is true.
    """

    def __init__(self, config: ClusterConfig, *, tool: bool = False) -> None:
        self.config = config
        self.keys = Keys(
            config.secret,
            previous=config.previous_secrets,
            encrypt="encrypt" in config.interceptors.order,
        )
        self._tasks = BackgroundTasks(logger)
        log = RateLimitedLog(logger)
        self.pool = SenderPool(
            self.keys,
            local=lambda: self.membership.local,
            max_message_size=config.receiver.max_message_size,
            on_lost=lambda member, reason: self.membership.connection_lost(member, reason),
            tasks=self._tasks,
        )
        self.membership = MembershipService(
            config, self.pool, tasks=self._tasks, log=log, route=TOOL_ROUTE if tool else None
        )
        self.coordinator = Coordinator(config, self.keys, self.pool, self.membership, log=log)
        self.dispatch = DispatchInterceptor(config.interceptors.dispatch)
        self._listeners: list[MessageListener] = []
        layers: list[Interceptor] = [_Top(self._listeners)]
        if "dispatch" in config.interceptors.order:
            layers.append(self.dispatch)
        layers.append(self.coordinator)
        for upper, lower in itertools.pairwise(layers):
            upper.below, lower.above = lower, upper
        self._stack = layers
        self._started = False

    # -- public API ------------------------------------------------------------

    @property
    def local(self) -> Member:
        """This member (its address is known once started)."""
        return self.membership.local

    @property
    def members(self) -> list[Member]:
        """The current members (without this one), oldest first."""
        return self.membership.members()

    @property
    def table(self) -> MemberTable:
        """The member table (liveness per member)."""
        return self.membership.table

    @property
    def detector(self) -> FailureDetector:
        """The failure detector that verifies membership changes."""
        return self.membership.detector

    def add_listener(self, listener: MessageListener) -> None:
        """Call ``listener(message)`` for every message received (it may be async)."""
        self._listeners.append(listener)

    def add_membership_listener(self, listener: MembershipListener) -> None:
        """Tell ``listener`` about members added and removed."""
        self.membership.add_listener(listener)

    async def start(self) -> None:
        """Bind the receiver, start the stack and membership."""
        if self._started:
            return
        if not self.keys.enabled and not self.config.allow_insecure:
            raise RuntimeError(
                "refusing to start an unauthenticated cluster channel: set secret "
                "(CLUSTERSESSION_SECRET), or allow_insecure = true on a trusted network"
            )
        if not self.keys.enabled:
            logger.warning("cluster traffic is NOT authenticated (allow_insecure = true)")
        for layer in reversed(self._stack):  # the coordinator first: it binds the port
            await layer.start()
        host = "" if self.config.receiver.address == "auto" else self.config.receiver.address
        await self.membership.start(host, self.coordinator.receiver.port)
        self._started = True
        logger.info("channel started: %s (membership %s)", self.local, self.config.membership.kind)

    async def stop(self) -> None:
        """Announce that we leave, close every connection, stop background work."""
        if not self._started:
            return
        self._started = False
        for layer in self._stack[:-1]:  # above the coordinator: queued messages go out
            await layer.stop()
        await self.membership.stop()
        await self._tasks.cancel_all()
        await self.pool.close_all()
        await self.coordinator.stop()
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
        targets = self.membership.members() if members is None else list(members)
        if not targets:
            return
        await self._stack[0].send(targets, payload, opts)

    def stats(self) -> ChannelStats:
        """Counters: channel totals, per layer (and the failure detector), and per peer."""
        layers: dict[str, float | int] = {}
        for layer in self._stack:
            layers.update(layer.stats())
        layers.update(self.membership.detector.stats())
        c, m = self.coordinator, self.membership
        return ChannelStats(
            messages_received=c.messages_received,
            bytes_received=c.bytes_received,
            members_added=m.members_added,
            members_removed=m.members_removed,
            refused_frames=c.refused_frames,
            refused_heartbeats=m.refused_heartbeats,
            send_failures=c.send_failures,
            members=len(m.table),
            layers=layers,
            peers=c.traffic(),
            refused_by_reason=dict(c.refused_by_reason),
            ack_latency=self.pool.ack_latency.snapshot(),
        )
