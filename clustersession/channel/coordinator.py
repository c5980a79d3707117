"""``Coordinator``: the bottom of the interceptor stack, where messages meet the sockets.

Down, it sends a payload to every destination in parallel through the
:class:`~.transport.pool.SenderPool` (ACK modes, retries, timeouts) and reports
failed destinations to membership. Up, it reads the frames of the
:class:`~.transport.receiver.Receiver`: DATA goes up the stack (acknowledged
after processing for SYNC_ACK), PING and SUSPECT are answered with a PONG,
LEAVE removes the member.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial

from ..config import ClusterConfig
from . import options as send_options
from .api import PeerTraffic
from .errors import ChannelError, FrameError, refusal_reason
from .interceptors.base import ChannelMessage, Interceptor
from .member import Member, member_fields
from .membership.service import MembershipService
from .ratelimit import RateLimitedLog
from .security import Keys
from .transport.connection import Connection, member_record
from .transport.frames import Envelope, MessageType
from .transport.pool import SenderPool
from .transport.receiver import Receiver
from .transport.sender import PeerSender

logger = logging.getLogger("clustersession.channel")


class Coordinator(Interceptor):
    """Sends to members and receives from them; counts the traffic."""

    name = "coordinator"

    def __init__(
        self,
        config: ClusterConfig,
        keys: Keys,
        pool: SenderPool,
        membership: MembershipService,
        *,
        log: RateLimitedLog,
    ) -> None:
        super().__init__()
        self.config = config
        self.pool = pool
        self.membership = membership
        self.messages_received = 0
        self.bytes_received = 0
        self.refused_frames = 0
        self.refused_by_reason: dict[str, int] = {}
        self.send_failures = 0
        self._received: dict[bytes, list[int]] = {}  # member id -> [messages, bytes]
        self._log = log
        self.receiver = Receiver(
            config.receiver,
            keys,
            local=lambda: membership.local,
            handler=self._handle_frame,
            on_accepted=self._accepted,
            on_refused=self._frame_refused,
        )

    async def start(self) -> None:
        """Listen (the port is ``self.receiver.port`` afterwards)."""
        await self.receiver.start()

    async def stop(self) -> None:
        """Stop listening; close every incoming connection."""
        await self.receiver.stop()

    def traffic(self) -> dict[bytes, PeerTraffic]:
        """Per peer: what we sent it and what we received from it."""
        peers = {
            sender.member.id: sender.stats.traffic(*self._received.get(sender.member.id, (0, 0)))
            for sender in self.pool
        }
        for member_id, (messages, size) in self._received.items():
            peers.setdefault(
                member_id, PeerTraffic(messages_received=messages, bytes_received=size)
            )
        return peers

    # -- down ------------------------------------------------------------------

    async def send(self, members: Sequence[Member], payload: bytes, options: int) -> None:
        senders = [self.pool.get(m) for m in members]
        writable = all(s.writable for s in senders)
        if writable and not options & send_options.USE_ACK:
            # Nothing to wait for (the usual asynchronous replication): write to every
            # socket now, rather than one task per destination a loop iteration later.
            for sender in senders:
                sender.send_nowait(payload, options)
            return
        timeout = self.config.sender.timeout / 1000
        retries = self.config.sender.max_retry_attempts
        results: list[BaseException | None]
        if writable:  # connected, and USE_ACK: the fast path; else (connecting) a task per peer
            results = await self._send_acked(senders, payload, options, timeout, retries)
        else:
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
            self.send_failures += len(failed)
            # Here, below the dispatch queue, so failed async sends are verified too.
            for member, error in failed.items():
                self.membership.send_failed(member, error)
            raise ChannelError(failed)

    async def _send_acked(
        self,
        senders: list[PeerSender],
        payload: bytes,
        options: int,
        timeout: float,
        retries: int,
    ) -> list[BaseException | None]:
        """An acknowledged send to peers whose connections are open: each one's error or None.

        Written to every socket now; the ACKs settle one future, bounded by one
        timer (no task per destination, no ``wait_for``), so the sender runs on in
        the loop iteration after the last ACK: a synchronous commit waits for the
        round trip, not for loop iterations on a busy node. Failures then go the
        way :meth:`PeerSender.send` would take them (a lost connection is retried).
        """
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        errors: list[BaseException | None] = [None] * len(senders)
        answered = [False] * len(senders)
        waiting = len(senders)
        all_answered: asyncio.Future[None] = loop.create_future()

        def settle(index: int, error: BaseException | None) -> None:
            nonlocal waiting
            errors[index], answered[index] = error, True
            waiting -= 1
            if not waiting and not all_answered.done():
                all_answered.set_result(None)

        ids: list[int | None] = []
        for index, sender in enumerate(senders):
            try:
                ids.append(sender.send_acked_nowait(payload, options, partial(settle, index)))
            except Exception as exc:  # as _send_once's write failing: retried below
                ids.append(None)
                settle(index, exc)
        timer = loop.call_later(timeout, _resolve, all_answered)
        try:
            await all_answered
        finally:
            timer.cancel()
            for sender, message_id in zip(senders, ids, strict=True):
                if message_id is not None:
                    sender.forget(message_id)
        for index, sender in enumerate(senders):
            if not answered[index]:
                errors[index] = TimeoutError(f"no ACK from {sender.member} within {timeout} s")
        failed = [(i, error) for i, error in enumerate(errors) if error is not None]
        if failed:
            outcomes = await asyncio.gather(
                *(
                    senders[i].resend(payload, options, error, deadline=deadline, retries=retries)
                    for i, error in failed
                ),
                return_exceptions=True,
            )
            for (index, _), outcome in zip(failed, outcomes, strict=True):
                errors[index] = outcome
        return errors

    # -- up --------------------------------------------------------------------

    def _accepted(self, conn: Connection) -> None:
        peer = conn.peer
        if peer is None:
            return
        if peer.domain != self.membership.local.domain:
            conn.close()
            return
        self.membership.connected(peer)

    def _frame_refused(self, source: str, error: FrameError) -> None:
        self.refused_frames += 1
        reason = refusal_reason(error)
        self.refused_by_reason[reason] = self.refused_by_reason.get(reason, 0) + 1
        self._log.warning("frame:" + source, "closed connection from %s: %s", source, error)

    async def _handle_frame(self, conn: Connection, envelope: Envelope) -> None:
        peer = conn.peer
        assert peer is not None
        if envelope.sender != peer.id:
            raise FrameError("envelope sender differs from the connection's peer")
        self.membership.heard(peer.id)
        kind = envelope.type
        if kind is MessageType.DATA:
            await self._handle_data(conn, peer, envelope)
        elif kind in (MessageType.PING, MessageType.SUSPECT):
            if kind is MessageType.SUSPECT:
                self.membership.suspected_by(peer)
            local = self.membership.local
            conn.write(
                Envelope(MessageType.PONG, local.id, envelope.message_id, 0, member_record(local))
            )
        elif kind is MessageType.LEAVE:
            self.membership.remove_member(peer, "left the group")
        else:
            raise FrameError(f"unexpected {kind.name} frame on an incoming connection")

    async def _handle_data(self, conn: Connection, peer: Member, envelope: Envelope) -> None:
        if not isinstance(envelope.payload, bytes):
            raise FrameError("DATA payload is not bytes")
        size = len(envelope.payload)
        self.messages_received += 1
        self.bytes_received += size
        received = self._received.setdefault(peer.id, [0, 0])
        received[0] += 1
        received[1] += size
        opts = envelope.options
        # A plain USE_ACK was acknowledged by the receiver on reading the frame.
        after_processing = bool(opts & send_options.USE_ACK) and bool(opts & send_options.SYNC_ACK)
        local_id = self.membership.local.id
        try:
            await self.message_received(ChannelMessage(peer, envelope.payload, opts))
        except Exception as exc:
            logger.exception(
                "listener failed on a message from %s", peer, extra=member_fields(peer)
            )
            if after_processing:
                reason = f"{type(exc).__name__}: {exc}"
                conn.write(Envelope(MessageType.FAIL_ACK, local_id, envelope.message_id, 0, reason))
            return
        if after_processing:
            conn.write(Envelope(MessageType.ACK, local_id, envelope.message_id, 0, None))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
