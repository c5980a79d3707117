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
from .connection import Connection, parse_member_record
from .frames import Envelope, MessageType

logger = logging.getLogger("clustersession.channel")

_ACK_REPLIES = (MessageType.ACK, MessageType.FAIL_ACK)
_DRAIN_ABOVE = 256 * 1024  # bytes waiting in the socket buffer before a send waits


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
        # message id -> (reply types that may answer it, the future to complete)
        self._pending: dict[int, tuple[tuple[MessageType, ...], asyncio.Future[Any]]] = {}
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
            except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
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
                elapsed = time.monotonic() - started
                self.stats.acks += 1
                self.stats.ack_time_total += elapsed
                self.stats.last_ack_time = elapsed
                if self.ack_latency is not None:
                    self.ack_latency.observe(elapsed)
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
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None

    def _drop_connection(self, reason: str, *, notify: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"connection to {self.member} lost: {reason}"))
        self._pending.clear()
        if notify and not self._closed:
            self.on_lost(self.member, reason)

    async def _read_replies(self, conn: Connection) -> None:
        reason = "closed by peer"
        try:
            while True:
                envelope = await conn.read()
                waiting = self._pending.get(envelope.message_id)
                if waiting is None or waiting[1].done():
                    continue
                expected, future = waiting
                if envelope.type not in expected:
                    raise FrameError(f"{envelope.type.name} does not answer this request")
                if envelope.type is MessageType.FAIL_ACK:
                    future.set_exception(RemoteProcessError(f"{self.member}: {envelope.payload}"))
                else:
                    future.set_result(envelope.payload)
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
