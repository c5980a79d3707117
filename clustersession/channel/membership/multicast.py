"""Membership over UDP multicast (Tomcat's McastService).

Every ``frequency`` ms the node multicasts a heartbeat naming itself; what it
hears from others goes to ``on_heartbeat``. Deciding who is a member (admission,
silence, removal) is the channel's and the failure detector's job, not this one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable

from ...config.sections import MembershipConfig
from ..errors import FrameError
from ..security import Keys
from . import heartbeat as hb

logger = logging.getLogger("clustersession.channel")

HeartbeatFactory = Callable[[bool], hb.Heartbeat]


def open_multicast_socket(config: MembershipConfig) -> socket.socket:
    """A non-blocking UDP socket joined to the group on the configured interface."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Several processes on one host (workers) all listen on the group's port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # Bound to the group, not the wildcard: datagrams of other groups on the
        # same port stay out.
        sock.bind((config.address, config.port))
        interface = config.bind or "0.0.0.0"
        membership = struct.pack(
            "4s4s", socket.inet_aton(config.address), socket.inet_aton(interface)
        )
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        if config.bind:
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(config.bind)
            )
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, config.ttl or 1)
        loop = 0 if config.local_loopback_disabled else 1
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, loop)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: MulticastMembership) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.owner.datagram_received(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        logger.warning("multicast socket error: %s", exc)


class MulticastMembership:
    """Sends our heartbeats and passes on the ones we hear.

    ``make_heartbeat(leaving)`` builds our next heartbeat; ``on_heartbeat`` gets
    each authenticated, fresh heartbeat of another member; ``on_refused`` gets
    the reason for each datagram refused (the channel counts and logs them).
    """

    def __init__(
        self,
        config: MembershipConfig,
        keys: Keys,
        *,
        local_id: bytes,
        make_heartbeat: HeartbeatFactory,
        on_heartbeat: Callable[[hb.Heartbeat], None],
        on_refused: Callable[[str, str], None],
        replay_window: float,
    ) -> None:
        self.config = config
        self.keys = keys
        self.local_id = local_id
        self.make_heartbeat = make_heartbeat
        self.on_heartbeat = on_heartbeat
        self.on_refused = on_refused
        self.guard = hb.ReplayGuard(replay_window)
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join the group and start heartbeating (the first one goes out at once)."""
        loop = asyncio.get_running_loop()
        sock = open_multicast_socket(self.config)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transport = transport
        self._sender = loop.create_task(self._heartbeat_forever(), name="clustersession-heartbeat")

    async def stop(self) -> None:
        """Announce that we leave, then close the socket."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        if self._transport is not None:
            # Twice: a lost datagram would leave peers waiting for drop_time.
            for _ in range(2):
                self.send_now(leaving=True)
            self._transport.close()
            self._transport = None

    def send_now(self, *, leaving: bool = False) -> None:
        """Multicast a heartbeat now (start, refutation, leave)."""
        if self._transport is None:
            return
        datagram = hb.encode(self.make_heartbeat(leaving), self.keys)
        self._transport.sendto(datagram, (self.config.address, self.config.port))

    async def _heartbeat_forever(self) -> None:
        period = self.config.frequency / 1000
        while True:
            try:
                self.send_now()
            except OSError as exc:  # e.g. the interface went down: keep trying
                logger.warning("cannot send heartbeat: %s", exc)
            await asyncio.sleep(period)

    def datagram_received(self, data: bytes, source: str) -> None:
        """Check one datagram and hand a valid heartbeat of another member on."""
        try:
            heartbeat = hb.decode(data, self.keys, source_host=source)
        except FrameError as exc:
            self.on_refused(source, str(exc))
            return
        if heartbeat.member.id == self.local_id:
            return  # our own, looped back
        if heartbeat.domain != self.config.domain:
            return  # another cluster sharing the group: not an error
        if self.keys.enabled:
            try:
                self.guard.check(heartbeat)
            except FrameError as exc:
                self.on_refused(source, str(exc))
                return
        self.on_heartbeat(heartbeat)
