"""Outgoing traffic to one peer (Tomcat's PooledParallelSender, per destination).

One persistent, pipelined connection per peer: frames are written in call order,
so per-destination order holds, and many may await their ACKs at once, so a slow
acknowledgement does not serialise the sends behind it. A reader task takes
ACKs and PONGs off the connection and notices at once when the peer's kernel
closes it (the process died): ``on_lost`` is told, and the failure detector
verifies the peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from ..api import PeerTraffic
from ..errors import FrameError, RemoteProcessError
from ..histogram import Histogram
from ..member import Member, member_fields
from ..options import SYNC_ACK, USE_ACK
from ..security import Keys
from ..tasks import cancel_and_wait
from .connection import Connection, parse_member_record
from .frames import Envelope, MessageType

logger = logging.getLogger("clustersession.channel")

_ACK_REPLIES = (MessageType.ACK, MessageType.FAIL_ACK)
_DRAIN_ABOVE = 256 * 1024  # bytes waiting in the socket buffer before a send waits
_RETRYABLE = (ConnectionError, OSError, asyncio.IncompleteReadError)

AckCallback = Callable[[BaseException | None], None]
"""Told how an acknowledged send ended: ``None`` (ACK) or the error (FAIL_ACK, lost)."""

# What answers a pending request: a future to complete, or (the ACKs of
# send_acked_nowait) a function called at once with the reply's payload or error.
_Reply = asyncio.Future[Any] | Callable[[Any, BaseException | None], None]


class PeerStats:
    """Counters of the traffic to one peer."""

    def __init__(self) -> None:
        self.messages_sent = 0
        self.bytes_sent = 0
        self.failed_sends = 0
        self.acks = 0
        self.ack_time_total = 0.0
        self.last_ack_time = 0.0
        self.reconnects = 0

    @property
    def mean_ack_time(self) -> float:
        """Mean ACK round trip in seconds (0 before the first)."""
        return self.ack_time_total / self.acks if self.acks else 0.0

    def traffic(self, messages_received: int = 0, bytes_received: int = 0) -> PeerTraffic:
        """A snapshot, with what was received from the same peer."""
        return PeerTraffic(
            messages_sent=self.messages_sent,
            bytes_sent=self.bytes_sent,
            failed_sends=self.failed_sends,
            acks=self.acks,
            mean_ack_ms=round(self.mean_ack_time * 1000, 3),
            last_ack_ms=round(self.last_ack_time * 1000, 3),
            reconnects=self.reconnects,
            messages_received=messages_received,
            bytes_received=bytes_received,
        )


class PeerSender:
    """Sends frames to one member and matches its replies."""

    def __init__(
        self,
        member: Member,
        *,
        keys: Keys,
        local: Member,
        max_message_size: int,
        on_lost: Callable[[Member, str], None],
        ack_latency: Histogram | None = None,
    ) -> None:
        self.member = member
        self.ack_latency = ack_latency
        self.keys = keys
        self.local = local
        self.max_message_size = max_message_size
        self.on_lost = on_lost
        self.stats = PeerStats()
        self._conn: Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self._ids = itertools.count(1)
        # message id -> (reply types that may answer it, what the reply completes)
        self._pending: dict[int, tuple[tuple[MessageType, ...], _Reply]] = {}
        self._closed = False
        self._ever_connected = False

    @property
    def connected(self) -> bool:
        """Whether a live connection is open."""
        return self._conn is not None and not self._conn.closing

    async def connect(self, timeout: float) -> Member:
        """Open the connection if needed; return the member the handshake found."""
        if self.connected:
            assert self._conn is not None and self._conn.peer is not None
            return self._conn.peer
        async with self._connect_lock:  # FIFO: frames queued behind it keep their order
            if not self.connected:
                if self._closed:
                    raise ConnectionError("sender is closed")
                conn = await Connection.open(
                    self.member.host,
                    self.member.port,
                    keys=self.keys,
                    local=self.local,
                    max_message_size=self.max_message_size,
                    timeout=timeout,
                )
                if self._closed:  # closed while connecting: kept, it would never be closed
                    conn.close()
                    raise ConnectionError("sender is closed")
                if self._ever_connected:
                    self.stats.reconnects += 1
                self._ever_connected = True
                self._conn = conn
                self._reader = asyncio.get_running_loop().create_task(
                    self._read_replies(conn), name=f"clustersession-replies-{self.member.short_id}"
                )
        assert self._conn is not None and self._conn.peer is not None
        return self._conn.peer

    async def send(self, payload: bytes, options: int, *, timeout: float, retries: int) -> None:
        """Send one DATA frame; with USE_ACK wait for the ACK (or FAIL_ACK).

        Raises ``TimeoutError``, ``ConnectionError``/``OSError`` or
        :class:`RemoteProcessError`. A connection error is retried ``retries``
        times on a new connection; a timeout is not (the peer may have it).
        """
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            try:
                await self._send_once(payload, options, deadline)
                return
            except _RETRYABLE as exc:
                if isinstance(exc, TimeoutError) or attempt >= retries or self._closed:
                    self.stats.failed_sends += 1
                    raise
                attempt += 1
                self._drop_connection(f"send failed: {exc}")
            except BaseException:
                self.stats.failed_sends += 1
                raise

    @property
    def writable(self) -> bool:
        """Connected, and the peer keeps up: a send without ACK needs no waiting."""
        conn = self._conn
        return conn is not None and not conn.closing and conn.buffered <= _DRAIN_ABOVE

    def send_nowait(self, payload: bytes, options: int) -> None:
        """Queue one DATA frame without ACK on the socket now; only when :attr:`writable`.

        The asynchronous replication path: no task, no timer, no loop iteration.
        """
        assert not options & USE_ACK and self._conn is not None
        self._write(self._conn, next(self._ids), options, payload)

    def send_acked_nowait(self, payload: bytes, options: int, done: AckCallback) -> int:
        """Write one DATA frame with USE_ACK now; only when :attr:`writable`.

        ``done`` is called from the reply reader when the ACK (``None``) or a
        FAIL_ACK (:class:`RemoteProcessError`) arrives, or the connection is lost
        (``ConnectionError``): no future, no task, so whoever waits for several
        peers runs in the loop iteration after the last ACK. Returns the message
        id, for :meth:`forget` once nobody waits any more (a timeout, a cancel). A
        failure is not retried here: :meth:`resend` does what :meth:`send` would.
        """
        conn = self._conn
        assert options & USE_ACK and conn is not None
        message_id = next(self._ids)
        started = time.monotonic()

        def answered(_payload: Any, error: BaseException | None) -> None:
            if error is None:
                self._acked(time.monotonic() - started)
            done(error)

        self._pending[message_id] = (_ACK_REPLIES, answered)
        try:
            self._write(conn, message_id, options, payload)
        except BaseException:
            del self._pending[message_id]
            raise
        return message_id

    def forget(self, message_id: int) -> None:
        """Stop waiting for the reply to ``message_id`` (its callback is not called)."""
        self._pending.pop(message_id, None)

    async def resend(
        self, payload: bytes, options: int, error: BaseException, *, deadline: float, retries: int
    ) -> None:
        """After :meth:`send_acked_nowait` ended in ``error``: what :meth:`send` does next.

        A lost connection is retried (``retries`` more times, on a new connection,
        until the monotonic ``deadline``); anything else (a timeout, a FAIL_ACK) is
        counted as a failed send and raised.
        """
        if not isinstance(error, _RETRYABLE) or isinstance(error, TimeoutError):
            retries = 0
        if retries <= 0 or self._closed:
            self.stats.failed_sends += 1
            raise error
        self._drop_connection(f"send failed: {error}")
        remaining = max(deadline - time.monotonic(), 0.001)
        await self.send(payload, options, timeout=remaining, retries=retries - 1)

    def _acked(self, elapsed: float) -> None:
        self.stats.acks += 1
        self.stats.ack_time_total += elapsed
        self.stats.last_ack_time = elapsed
        if self.ack_latency is not None:
            self.ack_latency.observe(elapsed)

    def _write(self, conn: Connection, message_id: int, options: int, payload: bytes) -> None:
        before = conn.bytes_sent
        conn.write(Envelope(MessageType.DATA, self.local.id, message_id, options, payload))
        self.stats.messages_sent += 1
        self.stats.bytes_sent += conn.bytes_sent - before

    async def _send_once(self, payload: bytes, options: int, deadline: float) -> None:
        if not self.connected:  # the common case needs no timer
            remaining = deadline - time.monotonic()
            # A timeout scope, not wait_for: wait_for runs connect() as a task of its own,
            # and when a cancel (a member stopping) meets a failed connect, Python 3.11
            # leaves that task's error unretrieved ("Task exception was never retrieved").
            async with asyncio.timeout(remaining):
                await self.connect(remaining)
        conn = self._conn
        assert conn is not None
        message_id = next(self._ids)
        want_ack = bool(options & USE_ACK)
        future: asyncio.Future[Any] | None = None
        if want_ack:
            future = asyncio.get_running_loop().create_future()
            self._pending[message_id] = (_ACK_REPLIES, future)
        started = time.monotonic()
        try:
            self._write(conn, message_id, options, payload)
            if conn.buffered > _DRAIN_ABOVE:  # back-pressure only when the peer lags
                await asyncio.wait_for(conn.drain(), max(deadline - time.monotonic(), 0.001))
            if future is not None:
                await asyncio.wait_for(future, max(deadline - time.monotonic(), 0.001))
                self._acked(time.monotonic() - started)
        finally:
            self._pending.pop(message_id, None)

    async def ping(self, timeout: float, *, suspect: bool = False) -> Member:
        """A PING answered by the peer's event loop; returns the member that answered.

        ``suspect`` tells the peer it is suspected, so that it refutes at once.
        """
        deadline = time.monotonic() + timeout
        async with asyncio.timeout(timeout):  # not wait_for: see _send_once
            peer = await self.connect(timeout)
        conn = self._conn
        assert conn is not None
        message_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = ((MessageType.PONG,), future)
        kind = MessageType.SUSPECT if suspect else MessageType.PING
        try:
            conn.write(Envelope(kind, self.local.id, message_id, 0, None))
            record = await asyncio.wait_for(future, max(deadline - time.monotonic(), 0.001))
        finally:
            self._pending.pop(message_id, None)
        answered = parse_member_record(record, host=self.member.host)
        if answered.id != peer.id:
            raise FrameError("PONG names another member than the handshake")
        return answered

    def send_leave(self) -> None:
        """Tell the peer we are stopping (best effort, no reply)."""
        if self.connected:
            assert self._conn is not None
            with contextlib.suppress(Exception):
                self._conn.write(Envelope(MessageType.LEAVE, self.local.id, 0, 0, None))

    async def close(self) -> None:
        """Close the connection; pending sends fail with ``ConnectionError``."""
        self._closed = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.drain(), 0.5)
        self._drop_connection("closed", notify=False)
        if self._reader is not None:
            await cancel_and_wait([self._reader], logger=logger)
            self._reader = None

    def _drop_connection(self, reason: str, *, notify: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        pending, self._pending = self._pending, {}
        for _, reply in pending.values():
            lost = ConnectionError(f"connection to {self.member} lost: {reason}")
            if isinstance(reply, asyncio.Future):
                if not reply.done():
                    reply.set_exception(lost)
            else:
                reply(None, lost)
        if notify and not self._closed:
            self.on_lost(self.member, reason)

    async def _read_replies(self, conn: Connection) -> None:
        reason = "closed by peer"
        try:
            while True:
                envelope = await conn.read()
                waiting = self._pending.get(envelope.message_id)
                if waiting is None:
                    continue
                expected, reply = waiting
                if isinstance(reply, asyncio.Future) and reply.done():
                    continue
                if envelope.type not in expected:
                    raise FrameError(f"{envelope.type.name} does not answer this request")
                error = None
                if envelope.type is MessageType.FAIL_ACK:
                    error = RemoteProcessError(f"{self.member}: {envelope.payload}")
                if not isinstance(reply, asyncio.Future):
                    del self._pending[envelope.message_id]  # a callback is answered once
                    reply(envelope.payload, error)
                elif error is not None:
                    reply.set_exception(error)
                else:
                    reply.set_result(envelope.payload)
        except asyncio.CancelledError:
            raise
        except FrameError as exc:
            reason = f"bad reply frame: {exc}"
            logger.warning(
                "connection to %s: %s", self.member, reason, extra=member_fields(self.member)
            )
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._conn is conn:
            self._drop_connection(reason, notify=True)


def wants_processing_ack(options: int) -> bool:
    """Whether the receiver must ACK only after its listeners ran."""
    return bool(options & USE_ACK) and bool(options & SYNC_ACK)
