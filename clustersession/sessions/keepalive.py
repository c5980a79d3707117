"""Keep-alive: sessions used here stay alive everywhere, without a message per read.

A request that only reads a session changes nothing but its last access. Those
times are collected and go out in one TOUCH message per period, so a session in
use on one node does not expire on another; a copy's expiry allows for TOUCH
messages in flight (:meth:`KeepAlive.grace`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from ..channel import ChannelError, Member
from ..channel.application import nodes
from ..channel.options import ASYNCHRONOUS
from .context import ReplicationContext
from .wire import Kind, Message, encode

logger = logging.getLogger("clustersession")


def touch_period(max_inactive_interval: int) -> float:
    """Seconds between TOUCH messages for sessions that idle out after ``max_inactive_interval``.

    Often enough that a peer never sees a live session idle for long, rarely
    enough to cost nothing.
    """
    if max_inactive_interval <= 0:
        return 30.0
    return min(max(max_inactive_interval / 10, 1.0), 30.0)


class KeepAlive:
    """Collects the sessions read here and tells the members, once per ``period``."""

    def __init__(
        self,
        context: ReplicationContext,
        *,
        holders: Callable[[str], Iterable[Member]] | None = None,
    ) -> None:
        """``holders(token)``: the members to tell (default: every node)."""
        self.holders = holders
        self.sessions = context.sessions
        self.channel = context.channel
        self.period = touch_period(context.config.manager.max_inactive_interval)
        self.counters = context.counters
        self._touched: dict[str, float] = {}

    @property
    def grace(self) -> float:
        """How much longer a copy waits before expiring: TOUCH messages may be in flight."""
        return 2 * self.period

    def touched(self, token: str, accessed_at: float) -> None:
        """A request here used session ``token`` at ``accessed_at``."""
        self._touched[token] = accessed_at

    async def run_forever(self) -> None:
        """Send what was touched, every ``period``."""
        while True:
            await asyncio.sleep(self.period)
            await self.flush()

    async def flush(self) -> None:
        """Send what was touched since the last TOUCH, now."""
        targets = nodes(self.channel.members)  # tool members hold no sessions
        if not self._touched or not targets:
            self._touched.clear()
            return
        touched, self._touched = self._touched, {}
        if self.holders is None:
            await self._send(targets, list(touched.items()))
            return
        by_member: dict[Member, list[tuple[str, float]]] = {}
        for token, accessed_at in touched.items():
            for member in self.holders(token):
                by_member.setdefault(member, []).append((token, accessed_at))
        for member, touches in by_member.items():
            await self._send([member], touches)

    async def _send(self, targets: list[Member], touches: list[tuple[str, float]]) -> None:
        payload = encode(Message(Kind.TOUCH, touches=touches))
        try:
            await self.channel.send(targets, payload, ASYNCHRONOUS)
            self.counters.touches_sent += len(touches)
        except (ChannelError, ValueError) as exc:
            logger.warning("keep-alive failed: %s", exc)

    def received(self, touches: list[tuple[str, float]]) -> None:
        """A member's TOUCH: later accesses move our copies' last access forward."""
        for token, accessed_at in touches:
            record = self.sessions.store.get(token)
            if record is not None and accessed_at > record.last_accessed_at:
                record.last_accessed_at = accessed_at
