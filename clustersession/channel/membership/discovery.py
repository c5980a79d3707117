"""Where to look for peers when there is no multicast: a static list, or DNS.

These only name addresses; the channel contacts each over TCP, learns the member
that answers from the handshake, and checks its liveness with pings.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from ...config.sections import MembershipConfig

logger = logging.getLogger("clustersession.channel")

Address = tuple[str, int]


def split_address(text: str) -> Address:
    """``host:port`` or ``[v6]:port`` → ``(host, port)``."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class StaticDiscovery:
    """The configured ``static_members``."""

    def __init__(self, config: MembershipConfig) -> None:
        self._addresses = [split_address(a) for a in config.static_members]

    async def addresses(self) -> list[Address]:
        """Every configured peer address (our own is skipped by the channel)."""
        return list(self._addresses)


class DnsDiscovery:
    """Every A/AAAA record of ``dns_name``, re-resolved every ``dns_refresh_interval`` s.

    The docker-compose and Kubernetes headless-service case: the name resolves to
    one address per replica, each listening on ``port`` (our ``receiver.port``).
    """

    def __init__(self, config: MembershipConfig, port: int) -> None:
        assert config.dns_name is not None
        self.name = config.dns_name
        self.port = port
        self.refresh = config.dns_refresh_interval
        self._cached: list[Address] = []
        self._resolved_at = float("-inf")

    async def addresses(self) -> list[Address]:
        """The cached records, refreshed when older than the refresh interval."""
        now = time.monotonic()
        if now - self._resolved_at >= self.refresh:
            self._resolved_at = now
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    self.name, self.port, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                logger.warning("cannot resolve %s: %s", self.name, exc)
                return self._cached
            self._cached = sorted({(str(info[4][0]), self.port) for info in infos})
        return self._cached
