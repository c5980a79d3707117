"""One authenticated TCP connection between two members.

The initiator sends HELLO (its nonce and member record), the acceptor answers
WELCOME (its nonce, the initiator's nonce, its member record); both are tagged
with the handshake key. Every later frame is tagged with a key derived from both
nonces and a per-direction sequence number, so a recorded frame is refused when
replayed, reordered or sent on another connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from ..errors import AuthError, FrameError
from ..member import Member
from ..security import Cipher, Keys
from .frames import (
    FLAG_ENCRYPTED,
    HEADER_SIZE,
    Envelope,
    MessageType,
    decode_envelope,
    encode_envelope,
    pack_header,
    unpack_header,
)

NONCE_SIZE = 16


def member_record(member: Member) -> list[Any]:
    """A member as the handshake and PONG frames carry it."""
    return [member.id, member.host, member.port, member.route, member.domain, member.started_at]


def parse_member_record(record: Any, *, host: str | None = None) -> Member:
    """The inverse of :func:`member_record`; ``host`` replaces an unusable address."""
    if not isinstance(record, list) or len(record) != 6:
        raise FrameError("malformed member record")
    member_id, announced, port, route, domain, started_at = record
    if not isinstance(member_id, bytes) or len(member_id) != 16:
        raise FrameError("member id is not 16 bytes")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise FrameError(f"bad port {port!r}")
    if not all(isinstance(v, str) for v in (announced, route, domain)):
        raise FrameError("member host, route and domain must be strings")
    if not isinstance(started_at, int | float):
        raise FrameError("member start time must be a number")
    if host is not None and announced in ("", "0.0.0.0", "::"):
        announced = host
    return Member(member_id, announced, port, route, domain, float(started_at))


class Connection:
    """Frames in both directions over one stream pair, after a handshake."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keys: Keys,
        max_message_size: int,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.keys = keys
        self.max_length = max_message_size + keys.tag_size
        self.peer: Member | None = None
        self._send_key = keys.handshake
        self._recv_key = keys.handshake
        # An accepted connection's HELLO may be tagged with a previous secret's key
        # (a node not yet rotated): it is tried against all, and the one that
        # verifies keys the connection.
        self._any_handshake_key = False
        self._send_cipher: Cipher | None = None
        self._recv_cipher: Cipher | None = None
        self._send_seq = 0
        self._recv_seq = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    # -- handshake -------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        keys: Keys,
        local: Member,
        max_message_size: int,
        timeout: float,
    ) -> Connection:
        """Connect and shake hands; ``peer`` is set on the result."""
        # asyncio.timeout, not wait_for: on 3.11, wait_for drops a cancel that arrives
        # as its awaitable completes, and a cancelled handshake then went on (issue 12).
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
        conn = cls(reader, writer, keys, max_message_size)
        try:
            nonce = secrets.token_bytes(NONCE_SIZE)
            conn.write(Envelope(MessageType.HELLO, local.id, 0, 0, [nonce, member_record(local)]))
            async with asyncio.timeout(timeout):
                welcome = await conn.read()
            if welcome.type is not MessageType.WELCOME:
                raise FrameError(f"expected WELCOME, got {welcome.type.name}")
            theirs, echoed, record = _handshake_fields(welcome.payload, 3)
            if echoed != nonce:
                raise AuthError("WELCOME does not answer our HELLO")
            conn.peer = parse_member_record(record, host=host)
            conn._keyed(*keys.connection_keys(keys.handshake, nonce, theirs), initiator=True)
        except BaseException:
            conn.close()
            raise
        return conn

    @classmethod
    async def accept(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        keys: Keys,
        local: Member,
        max_message_size: int,
        timeout: float,
    ) -> Connection:
        """Answer an incoming handshake; ``peer`` is set on the result."""
        conn = cls(reader, writer, keys, max_message_size)
        conn._any_handshake_key = True
        async with asyncio.timeout(timeout):  # not wait_for: see open()
            hello = await conn.read()
        if hello.type is not MessageType.HELLO:
            raise FrameError(f"expected HELLO, got {hello.type.name}")
        theirs, record = _handshake_fields(hello.payload, 2)
        peername = writer.get_extra_info("peername")
        conn.peer = parse_member_record(record, host=peername[0] if peername else None)
        nonce = secrets.token_bytes(NONCE_SIZE)
        conn.write(
            Envelope(MessageType.WELCOME, local.id, 0, 0, [nonce, theirs, member_record(local)])
        )
        conn._keyed(*keys.connection_keys(conn._send_key, theirs, nonce), initiator=False)
        return conn

    def _keyed(self, i2a: bytes, a2i: bytes, *, initiator: bool) -> None:
        self._send_key, self._recv_key = (i2a, a2i) if initiator else (a2i, i2a)
        self._send_cipher = self.keys.cipher(self._send_key)
        self._recv_cipher = self.keys.cipher(self._recv_key)

    # -- frames ----------------------------------------------------------------

    def write(self, envelope: Envelope) -> None:
        """Queue one frame on the socket (ordered; see :meth:`drain`)."""
        body = encode_envelope(envelope)
        flags = 0
        seq = self._send_seq
        self._send_seq += 1
        if self._send_cipher is not None:
            flags = FLAG_ENCRYPTED
            aad = pack_header(flags, len(body) + 16 + self.keys.tag_size)
            body = self._send_cipher.encrypt(seq, body, aad)
        header = pack_header(flags, len(body) + self.keys.tag_size)
        tag = self.keys.tag(self._send_key, seq.to_bytes(8, "big"), header, body)
        self.writer.write(header + body + tag)
        self.bytes_sent += HEADER_SIZE + len(body) + len(tag)

    @property
    def buffered(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return self.writer.transport.get_write_buffer_size()

    async def drain(self) -> None:
        """Wait until the socket's buffer is below its high-water mark."""
        await self.writer.drain()

    async def read(self) -> Envelope:
        """The next frame's envelope.

        Raises :class:`FrameError` (or :class:`AuthError`) for a bad frame, after
        which the connection must be closed, and ``asyncio.IncompleteReadError``
        when the peer closed it.
        """
        header = await self.reader.readexactly(HEADER_SIZE)
        flags, length = unpack_header(header, self.max_length)
        tag_size = self.keys.tag_size
        if length < tag_size:
            raise FrameError(f"frame of {length} bytes is shorter than its tag")
        rest = await self.reader.readexactly(length)
        body, tag = rest[: length - tag_size], rest[length - tag_size :]
        seq = self._recv_seq
        parts = (seq.to_bytes(8, "big"), header, body)
        if self._any_handshake_key:
            key = self.keys.verifying_key(self.keys.handshakes, tag, *parts)
            if key is None:
                raise AuthError("HELLO tag does not verify under any of our secrets")
            # The WELCOME answers under the key the peer used, and keys the connection.
            self._send_key = self._recv_key = key
            self._any_handshake_key = False
        elif not self.keys.verify(self._recv_key, tag, *parts):
            raise AuthError("frame tag does not verify (wrong secret, tampered or replayed)")
        self._recv_seq += 1
        self.bytes_received += HEADER_SIZE + length
        if flags & FLAG_ENCRYPTED:
            if self._recv_cipher is None:
                raise FrameError("encrypted frame, but encryption is not configured here")
            try:
                body = self._recv_cipher.decrypt(seq, body, header)
            except Exception as exc:  # cryptography's InvalidTag
                raise AuthError("frame does not decrypt") from exc
        elif self._recv_cipher is not None:
            raise AuthError("unencrypted frame on an encrypted channel")
        return decode_envelope(body)

    def close(self) -> None:
        """Close the socket now."""
        with contextlib.suppress(Exception):
            self.writer.close()

    @property
    def closing(self) -> bool:
        """Whether the socket is closed or closing."""
        return self.writer.is_closing()


def _handshake_fields(payload: Any, count: int) -> list[Any]:
    if not isinstance(payload, list) or len(payload) != count:
        raise FrameError("malformed handshake")
    for nonce in payload[: count - 1]:
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
            raise FrameError("malformed handshake nonce")
    return payload
