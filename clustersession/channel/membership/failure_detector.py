"""Failure detection (Tomcat's TcpFailureDetector, with Lifeguard's caution).

Nobody is added or removed on hearsay. A member is admitted once it answered a
PING over TCP, and a member is removed only once it failed to answer one:

* silence: no heartbeat (or PONG, or frame) for ``drop_time``;
* a lost connection: the kernel of a dead process closes its sockets, so our
  persistent connection to every member ends at once, and verification starts
  at once instead of after ``drop_time``; a refused reconnect settles it;
* a failed send.

The PING is answered by the peer's event loop, not by its kernel, so a hung or
stopped process (SIGSTOP) is found out, which a bare TCP connect cannot do. It is
sent as SUSPECT when the member went silent, so the member refutes at once with a
fresh heartbeat to everyone.

Following hashicorp/memberlist's Lifeguard, a node that was itself not listening
does not blame its peers: when this node's event loop wakes up late (a blocking
call, a CPU-bound request, a GC pause), the lost time is credited to every
member's silence and the node's awareness score rises, which stretches its
verification timeouts until it has been healthy for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from ...config.sections import FailureDetectorConfig, MembershipConfig
from ..errors import RemoteProcessError
from ..member import Member, member_fields
from ..tasks import BackgroundTasks
from ..transport.sender import PeerSender
from .table import MemberTable

logger = logging.getLogger("clustersession.channel")

MAX_AWARENESS = 8


class MembershipControl(Protocol):
    """What the detector needs from its channel."""

    table: MemberTable

    def sender_for(self, member: Member) -> PeerSender:
        """The (possibly new) sender to ``member``."""
        ...

    def add_member(self, member: Member) -> None:
        """Make ``member`` a member and tell the listeners."""
        ...

    def forget_sender(self, member: Member) -> None:
        """Close and drop the sender to a member that was not admitted."""
        ...

    def remove_member(self, member: Member, reason: str) -> None:
        """Drop ``member`` and tell the listeners."""
        ...


class FailureDetector:
    """Verifies membership changes: members that announce themselves, go silent or fail a send.

    With ``enabled=False`` (the detector is not in ``interceptors.order``) it
    trusts heartbeats alone, as Tomcat does without a TcpFailureDetector:
    members are added on their first heartbeat and removed after ``drop_time``.
    """

    def __init__(
        self,
        config: FailureDetectorConfig,
        membership: MembershipConfig,
        channel: MembershipControl,
        *,
        enabled: bool = True,
    ) -> None:
        self.config = config
        self.channel = channel
        self.enabled = enabled
        self.period = membership.frequency / 1000
        self.drop_time = membership.drop_time / 1000
        self.awareness = 0
        self.verifications = 0
        self.false_suspicions = 0
        self.local_stalls = 0
        self._busy: set[bytes] = set()
        self._tasks = BackgroundTasks(logger)
        self._healthy_ticks = 0

    @property
    def timeout(self) -> float:
        """Seconds a verification may take, stretched while this node is unhealthy."""
        return self.config.connect_timeout / 1000 * (1 + self.awareness)

    async def start(self) -> None:
        """Start watching for silent members."""
        self._tasks.spawn(self._watch(), "clustersession-failure-detector")

    async def stop(self) -> None:
        """Stop watching; verifications in progress are abandoned."""
        await self._tasks.cancel_all()

    # -- send failures ---------------------------------------------------------

    def send_failed(self, member: Member, error: BaseException) -> None:
        """A send to ``member`` failed (synchronous or queued): verify it."""
        if not isinstance(error, RemoteProcessError):  # it answered: it is alive
            self.suspect(member, f"send failed: {type(error).__name__}: {error}")

    # -- membership decisions --------------------------------------------------

    def admit(self, member: Member) -> None:
        """A member we have not verified announced itself: verify, then add."""
        if member.id in self.channel.table or member.id in self._busy:
            return
        if not self.enabled:
            self.channel.add_member(member)
            return
        self._spawn(member, self._admit(member))

    def suspect(self, member: Member, reason: str) -> None:
        """Something suggests ``member`` is gone: verify it, and remove it if it fails."""
        if member.id not in self.channel.table or member.id in self._busy:
            return
        if not self.enabled:
            if reason.startswith("silent"):
                self.channel.remove_member(member, reason)
            return
        self._spawn(member, self._verify(member, reason))

    def _spawn(self, member: Member, work: Coroutine[Any, Any, None]) -> None:
        self._busy.add(member.id)
        task = self._tasks.spawn(work, f"clustersession-verify-{member.short_id}")
        task.add_done_callback(lambda _: self._busy.discard(member.id))

    async def _admit(self, member: Member) -> None:
        sender = self.channel.sender_for(member)
        try:
            verified = await sender.ping(self.timeout)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            # ValueError covers FrameError/AuthError: a peer that fails the handshake.
            logger.debug("not admitting %s yet: %s", member, exc, extra=member_fields(member))
            self.channel.forget_sender(member)
            return
        if verified.id != member.id:
            logger.warning(
                "%s answered as %s: not admitted", member, verified, extra=member_fields(member)
            )
            return
        self.channel.add_member(member)

    async def _verify(self, member: Member, reason: str) -> None:
        self.verifications += 1
        sender = self.channel.sender_for(member)
        started = time.monotonic()
        try:
            await sender.ping(self.timeout, suspect=reason.startswith("silent"))
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if member.id in self.channel.table:
                elapsed = time.monotonic() - started
                why = str(exc) or type(exc).__name__
                self.channel.remove_member(
                    member, f"{reason}; verification failed after {elapsed:.3f} s: {why}"
                )
            return
        self.false_suspicions += 1
        self.channel.table.heard(member.id)
        logger.info(
            "%s is alive (it answered a ping) despite: %s",
            member,
            reason,
            extra=member_fields(member),
        )

    # -- silence ---------------------------------------------------------------

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        expected = loop.time() + self.period
        while True:
            await asyncio.sleep(max(expected - loop.time(), 0))
            lag = loop.time() - expected
            expected = loop.time() + self.period
            self._account_lag(lag)
            for member in self.channel.table.silent(self.drop_time):
                state = self.channel.table.get(member.id)
                silence = 0.0 if state is None else time.monotonic() - state.last_heard
                self.suspect(member, f"silent for {silence * 1000:.0f} ms")

    def _account_lag(self, lag: float) -> None:
        if lag > self.period:
            # We were not listening: that silence is ours, not the members'.
            self.channel.table.credit(lag)
            self.local_stalls += 1
            self.awareness = min(self.awareness + 1, MAX_AWARENESS)
            self._healthy_ticks = 0
            logger.warning(
                "event loop stalled for %.0f ms; awareness %d", lag * 1000, self.awareness
            )
        elif self.awareness:
            self._healthy_ticks += 1
            if self._healthy_ticks >= 10:  # ten healthy periods per step down
                self.awareness -= 1
                self._healthy_ticks = 0

    def stats(self) -> dict[str, float | int]:
        """Counters for the status page."""
        return {
            "verifications": self.verifications,
            "false_suspicions": self.false_suspicions,
            "local_stalls": self.local_stalls,
            "awareness": self.awareness,
        }
