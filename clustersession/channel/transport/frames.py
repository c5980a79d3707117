"""The wire format of TCP traffic: frames carrying a msgpack envelope.

A frame is an 8-byte header, a body and a tag (``docs/protocol.md``)::

    b"CS" | version u8 | flags u8 | length u32 (body + tag, big-endian)
    body: msgpack [version, type, sender id, message id, options, payload]
    tag:  HMAC-SHA256(direction key, seq u64 | header | body), empty without a secret

``length`` is checked against the size limit before any of the body is read.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from ..errors import FrameError, OversizeError

MAGIC: Final = b"CS"
VERSION: Final = 1
HEADER: Final = struct.Struct(">2sBBI")
HEADER_SIZE: Final = HEADER.size
FLAG_ENCRYPTED: Final = 0x01


class MessageType(enum.IntEnum):
    """What a frame is for."""

    HELLO = 1  # handshake, initiator → acceptor
    WELCOME = 2  # handshake, acceptor → initiator
    DATA = 3  # an application message
    ACK = 4  # DATA received (or processed, with SYNC_ACK)
    FAIL_ACK = 5  # DATA received but a listener failed
    PING = 6  # are you alive? answered by the peer's event loop
    PONG = 7
    LEAVE = 8  # the sender is stopping: drop it now
    SUSPECT = 9  # the sender suspects the receiver: refute by answering


@dataclass(frozen=True, slots=True)
class Envelope:
    """The decoded body of a frame."""

    type: MessageType
    sender: bytes
    message_id: int
    options: int
    payload: Any


def encode_envelope(envelope: Envelope) -> bytes:
    """msgpack bytes of an envelope."""
    data: bytes = msgpack.packb(
        [
            VERSION,
            int(envelope.type),
            envelope.sender,
            envelope.message_id,
            envelope.options,
            envelope.payload,
        ],
        use_bin_type=True,
    )
    return data


def decode_envelope(body: bytes) -> Envelope:
    """Parse a frame body; :class:`FrameError` says what is wrong with it."""
    try:
        fields = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise FrameError(f"body is not msgpack: {exc}") from exc
    if not isinstance(fields, list) or len(fields) != 6:
        raise FrameError("body is not a 6-field envelope")
    version, kind, sender, message_id, options, payload = fields
    if version != VERSION:
        raise FrameError(f"envelope version {version!r}, expected {VERSION}")
    try:
        message_type = MessageType(kind)
    except ValueError:
        raise FrameError(f"unknown message type {kind!r}") from None
    if not isinstance(sender, bytes) or len(sender) != 16:
        raise FrameError("sender id is not 16 bytes")
    if not isinstance(message_id, int) or not isinstance(options, int):
        raise FrameError("message id and options must be integers")
    return Envelope(message_type, sender, message_id, options, payload)


def pack_header(flags: int, length: int) -> bytes:
    """The 8-byte frame header."""
    return HEADER.pack(MAGIC, VERSION, flags, length)


def unpack_header(header: bytes, max_length: int) -> tuple[int, int]:
    """``(flags, length)`` of a header; refuses bad magic, version or size."""
    magic, version, flags, length = HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic!r}: not a clustersession frame")
    if version != VERSION:
        raise FrameError(f"frame version {version}, expected {VERSION}")
    if length > max_length:
        raise OversizeError(f"frame of {length} bytes exceeds the limit of {max_length} bytes")
    return flags, length
