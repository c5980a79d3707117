"""``MembershipService``: who the members are, and how that is learned and kept true.

It owns the member table and this member's identity (id, address, incarnation)
and applies every membership decision, telling the membership listeners:

* discovery: multicast heartbeats, or (static and DNS kinds) probes of the
  listed addresses and pings of the known members every ``frequency``;
* admission and removal, through the :class:`FailureDetector` (it verifies
  with a PING before anyone is added or removed);
* refutation: a member that hears it is suspected raises its incarnation and
  heartbeats at once, so the others drop the suspicion;
* what the transport tells it: a frame heard, a LEAVE, a lost connection, a
  failed send, an authenticated peer that connected to us.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ...config import ClusterConfig
from ..api import MembershipListener
from ..member import Member, member_fields, new_member_id
from ..ratelimit import RateLimitedLog
from ..tasks import BackgroundTasks
from ..transport.pool import SenderPool
from ..transport.sender import PeerSender
from . import heartbeat as hb
from .discovery import DnsDiscovery, StaticDiscovery
from .failure_detector import FailureDetector
from .multicast import MulticastMembership
from .table import MemberTable

logger = logging.getLogger("clustersession.channel")

_PROBE_ERRORS = (OSError, asyncio.IncompleteReadError, ValueError)  # ValueError: bad handshake


class MembershipService:
    """The members of this member's group (implements the detector's ``MembershipControl``)."""

    def __init__(
        self,
        config: ClusterConfig,
        pool: SenderPool,
        *,
        tasks: BackgroundTasks,
        log: RateLimitedLog,
        route: str | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.table = MemberTable()
        # ``route`` overrides jvm_route for a tool member (channel.application.TOOL_ROUTE).
        self.local = Member(
            new_member_id(),
            "",
            0,
            config.jvm_route if route is None else route,
            config.membership.domain,
            time.time(),
        )
        self.incarnation = 0
        ic = config.interceptors
        # Without "failure_detector" in the order it trusts heartbeats alone (Tomcat's default).
        self.detector = FailureDetector(
            ic.failure_detector, config.membership, self, enabled="failure_detector" in ic.order
        )
        self.multicast: MulticastMembership | None = None
        self.members_added = 0
        self.members_removed = 0
        self.refused_heartbeats = 0
        self._listeners: list[MembershipListener] = []
        self._heartbeat_counter = 0
        self._probing: set[tuple[str, int]] = set()
        self._self_addresses: set[tuple[str, int]] = set()
        self._tasks = tasks
        self._log = log
        self._running = False

    def add_listener(self, listener: MembershipListener) -> None:
        """Tell ``listener`` about members added and removed."""
        self._listeners.append(listener)

    def members(self) -> list[Member]:
        """The current members (without this one), oldest first."""
        return self.table.members()

    # -- lifecycle -------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        """Announce this member at ``host:port`` and start finding the others."""
        local = self.local
        self.local = Member(local.id, host, port, local.route, local.domain, local.started_at)
        self._running = True
        await self.detector.start()
        membership = self.config.membership
        if membership.kind == "multicast":
            self.multicast = MulticastMembership(
                membership,
                self.pool.keys,
                local_id=self.local.id,
                make_heartbeat=self._make_heartbeat,
                on_heartbeat=self._heartbeat_received,
                on_refused=self._heartbeat_refused,
                replay_window=max(10.0, 3 * membership.drop_time / 1000),
            )
            await self.multicast.start()
        else:
            self._tasks.spawn(self._probe_forever(), "clustersession-probe")

    async def stop(self) -> None:
        """Leave: LEAVE to every peer, a leaving heartbeat, then forget every member."""
        self._running = False
        self.pool.send_leave()
        if self.multicast is not None:
            await self.multicast.stop()
        await self.detector.stop()
        for member in self.table.members():
            self.table.remove(member.id)

    # -- decisions (the detector's MembershipControl) --------------------------

    def sender_for(self, member: Member) -> PeerSender:
        """The sender to ``member``, created on first use."""
        return self.pool.get(member)

    def add_member(self, member: Member) -> None:
        """Make ``member`` a member (after verification) and tell the listeners."""
        if not self._running or member.id == self.local.id or not self.table.add(member):
            return
        self.members_added += 1
        logger.info("member added: %s", member, extra=member_fields(member))
        self._tell("member_added", member)

    def forget_sender(self, member: Member) -> None:
        """Close and drop the sender to ``member`` unless it is a member."""
        if member.id not in self.table:
            self.pool.discard(member)

    def remove_member(self, member: Member, reason: str) -> None:
        """Drop ``member`` and tell the listeners."""
        if self.table.remove(member.id) is None:
            return
        self.members_removed += 1
        logger.info("member removed: %s (%s)", member, reason, extra=member_fields(member))
        self.pool.discard(member)
        self._tell("member_disappeared", member, reason)

    def _tell(self, event: str, member: Member, *reason: str) -> None:
        for listener in self._listeners:
            try:
                getattr(listener, event)(member, *reason)
            except Exception:
                logger.exception("membership listener failed")

    # -- what the transport tells us --------------------------------------------

    def heard(self, member_id: bytes) -> None:
        """A frame (or PONG) came from ``member_id``: it is alive."""
        self.table.heard(member_id)

    def connected(self, peer: Member) -> None:
        """An authenticated peer opened a connection to us.

        It may be added before its first heartbeat arrives (Tomcat's
        TcpFailureDetector does the same).
        """
        if peer.id != self.local.id:
            self.detector.admit(peer)

    def connection_lost(self, member: Member, reason: str) -> None:
        """Our connection to ``member`` ended: verify it now, not after ``drop_time``."""
        if self._running:
            self.detector.suspect(member, f"connection lost ({reason})")

    def send_failed(self, member: Member, error: BaseException) -> None:
        """A send to ``member`` failed: verify it."""
        self.detector.send_failed(member, error)

    def suspected_by(self, accuser: Member) -> None:
        """``accuser`` suspects us: refute with a higher incarnation, at once."""
        self.incarnation += 1
        logger.info(
            "suspected by %s: refuting (incarnation %d)",
            accuser,
            self.incarnation,
            extra=member_fields(accuser),
        )
        if self.multicast is not None:
            self.multicast.send_now()

    # -- heartbeats ------------------------------------------------------------

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
        elif member.id in self.table:
            self.table.heard(member.id, incarnation=heartbeat.incarnation)
        else:
            self.detector.admit(member)

    def _heartbeat_refused(self, source: str, reason: str) -> None:
        self.refused_heartbeats += 1
        self._log.warning("hb:" + source, "refused heartbeat from %s: %s", source, reason)

    # -- static and DNS discovery ----------------------------------------------

    async def _probe_forever(self) -> None:
        """Find members at the listed addresses, ping the known ones."""
        discovery: StaticDiscovery | DnsDiscovery
        if self.config.membership.kind == "static":
            discovery = StaticDiscovery(self.config.membership)
        else:
            discovery = DnsDiscovery(self.config.membership, self.config.receiver.port)
        period = self.config.membership.frequency / 1000
        while True:
            timeout = self.detector.timeout  # stretched while this node is unhealthy
            for host, port in await discovery.addresses():
                if (host, port) in self._probing:
                    continue
                self._probing.add((host, port))
                self._tasks.spawn(self._scan(host, port, timeout), f"clustersession-probe-{port}")
            for member in self.table.members():
                self._tasks.spawn(self._ping(member, timeout), "clustersession-ping")
            await asyncio.sleep(period)

    async def _scan(self, host: str, first: int, timeout: float) -> None:
        """Probe the ports of ``host`` from ``first`` on, up to our ``auto_bind`` range.

        The workers of a host bind consecutive ports from ``receiver.port`` (each
        the first free one), and an address names the host, not a worker: so every
        port is tried up to the first one where nothing listens above every port
        known to be taken (a restarting worker leaves a gap for a moment).
        """
        try:
            last = min(first + self.config.receiver.auto_bind - 1, 65535)
            taken = {m.port for m in self.table.members() if m.host == host}
            if self._is_self(host, self.local.port):
                taken.add(self.local.port)
            highest = max(taken, default=first - 1)
            for port in range(first, last + 1):
                if port in taken or self._is_self(host, port):
                    continue
                if not await self._probe(host, port, timeout) and port > highest:
                    return
        finally:
            self._probing.discard((host, first))

    def _is_self(self, host: str, port: int) -> bool:
        if (host, port) in self._self_addresses:
            return True
        return port == self.local.port and host in (
            self.local.host,
            self.config.receiver.address,
            "127.0.0.1",
            "localhost",
        )

    async def _probe(self, host: str, port: int, timeout: float) -> bool:
        """Ping ``host:port`` and admit the member that answers; whether anything listened."""
        sender = self.pool.unpooled(Member(bytes(16), host, port))
        try:
            found = await sender.ping(timeout)
        except OSError:
            return False  # refused, unreachable or silent: nothing of ours there
        except _PROBE_ERRORS:
            return True  # something else listens (or a wrong secret): look further
        finally:
            await sender.close()
        if found.id == self.local.id:
            self._self_addresses.add((host, port))  # e.g. our own DNS record
        elif found.domain == self.local.domain:
            self.detector.admit(
                Member(found.id, host, port, found.route, found.domain, found.started_at)
            )
        return True

    async def _ping(self, member: Member, timeout: float) -> None:
        with contextlib.suppress(*_PROBE_ERRORS):
            await self.pool.get(member).ping(timeout)
            self.table.heard(member.id)
