"""The farm deployer's messages on the shared channel.

Every payload is :data:`PREFIX` (the channel's application mark 0xC1, which
the session floor skips, then ``b"FARM"``) followed by a msgpack list whose
first element is the kind. Decoding checks every type and raises
:class:`FarmWireError`.

==========  ==  ===============================================  ===========================
kind            fields                                           sent
==========  ==  ===============================================  ===========================
ANNOUNCE     1  request, name, size, sha256 hex, deployed_at     "deploy this; fetch from me"
UNDEPLOY     2  request, name, undeployed_at                     "remove this"
RESULT       3  request, ok, detail                              answers ANNOUNCE/UNDEPLOY
LIST         4  request                                          "what do you have?"
LISTING      5  request, [[name, size, sha256, at]], [[name, at]]  answers LIST (entries, removed)
FETCH        6  fetch, sha256 hex, offset, length                asks a source for a chunk
CHUNK        7  fetch, offset, data, error                       answers FETCH
PROGRESS     8  request                                          "still at it" (before RESULT)
==========  ==  ===============================================  ===========================

A node sends PROGRESS for an ANNOUNCE, UNDEPLOY or LIST every
:data:`PROGRESS_INTERVAL` until it answers, so the asker can tell a member that
is working (a long transfer, waiting for another worker of its host) from one
that will never answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

from ..channel.application import application_prefix

PREFIX: Final = application_prefix(b"FARM")
PROGRESS_INTERVAL: Final = 1.0
"""Seconds between a node's PROGRESS messages for a request it is working on."""


class FarmWireError(ValueError):
    """A payload with the farm prefix that is not a well-formed farm message."""


class Kind(enum.IntEnum):
    ANNOUNCE = 1
    UNDEPLOY = 2
    RESULT = 3
    LIST = 4
    LISTING = 5
    FETCH = 6
    CHUNK = 7
    PROGRESS = 8


@dataclass(frozen=True, slots=True)
class Entry:
    """A deployed artifact: its name, size, SHA-256 (hex) and when it was deployed."""

    name: str
    size: int
    digest: str
    deployed_at: float


@dataclass(slots=True)
class Message:
    """One farm message; the fields its kind uses are set."""

    kind: Kind
    request: int = 0
    name: str = ""
    size: int = 0
    digest: str = ""
    at: float = 0.0
    ok: bool = False
    detail: str = ""
    offset: int = 0
    length: int = 0
    data: bytes = b""
    entries: list[Entry] = field(default_factory=list)
    removed: list[tuple[str, float]] = field(default_factory=list)


def is_farm_payload(payload: bytes) -> bool:
    """Whether ``payload`` is the deployer's (a prefix comparison, nothing decoded)."""
    return payload[: len(PREFIX)] == PREFIX


def encode(message: Message) -> bytes:
    """The payload for ``message``."""
    k = message.kind
    body: list[Any]
    if k is Kind.ANNOUNCE:
        body = [message.request, message.name, message.size, message.digest, message.at]
    elif k is Kind.UNDEPLOY:
        body = [message.request, message.name, message.at]
    elif k is Kind.RESULT:
        body = [message.request, message.ok, message.detail]
    elif k in (Kind.LIST, Kind.PROGRESS):
        body = [message.request]
    elif k is Kind.LISTING:
        entries = [[e.name, e.size, e.digest, e.deployed_at] for e in message.entries]
        body = [message.request, entries, [list(r) for r in message.removed]]
    elif k is Kind.FETCH:
        body = [message.request, message.digest, message.offset, message.length]
    else:
        body = [message.request, message.offset, message.data, message.detail]
    packed: bytes = msgpack.packb([int(k), *body], use_bin_type=True)
    return PREFIX + packed


def decode(payload: bytes) -> Message:
    """Parse a farm payload (one that :func:`is_farm_payload`)."""
    try:
        data = msgpack.unpackb(payload[len(PREFIX) :], raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise FarmWireError(f"farm message is not msgpack: {exc}") from exc
    if not isinstance(data, list) or not data or not isinstance(data[0], int):
        raise FarmWireError("farm message is not a list starting with its kind")
    try:
        kind = Kind(data[0])
    except ValueError:
        raise FarmWireError(f"unknown farm message kind {data[0]!r}") from None
    body = data[1:]
    m = Message(kind)
    if kind is Kind.ANNOUNCE:
        request, name, size, digest, at = _fields(body, 5)
        m.request, m.name, m.size = _int(request), _str(name), _int(size)
        m.digest, m.at = _digest(digest), _float(at)
    elif kind is Kind.UNDEPLOY:
        request, name, at = _fields(body, 3)
        m.request, m.name, m.at = _int(request), _str(name), _float(at)
    elif kind is Kind.RESULT:
        request, ok, detail = _fields(body, 3)
        if not isinstance(ok, bool):
            raise FarmWireError("RESULT 'ok' is not a boolean")
        m.request, m.ok, m.detail = _int(request), ok, _str(detail)
    elif kind in (Kind.LIST, Kind.PROGRESS):
        (request,) = _fields(body, 1)
        m.request = _int(request)
    elif kind is Kind.LISTING:
        request, entries, removed = _fields(body, 3)
        m.request = _int(request)
        m.entries = [_entry(e) for e in _list(entries)]
        m.removed = [_removed(r) for r in _list(removed)]
    elif kind is Kind.FETCH:
        request, digest, offset, length = _fields(body, 4)
        m.request, m.digest = _int(request), _digest(digest)
        m.offset, m.length = _int(offset), _int(length)
    else:
        request, offset, data_, detail = _fields(body, 4)
        if not isinstance(data_, bytes):
            raise FarmWireError("CHUNK data is not bytes")
        m.request, m.offset, m.data, m.detail = _int(request), _int(offset), data_, _str(detail)
    return m


def _fields(body: list[Any], count: int) -> list[Any]:
    if len(body) != count:
        raise FarmWireError(f"expected {count} fields, got {len(body)}")
    return body


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FarmWireError(f"{value!r} is not a non-negative integer")
    return value


def _float(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise FarmWireError(f"{value!r} is not a number")
    return float(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise FarmWireError(f"{value!r} is not a string")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise FarmWireError(f"{value!r} is not a list")
    return value


def _digest(value: Any) -> str:
    text = _str(value)
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise FarmWireError("a digest is 64 lowercase hex digits (SHA-256)")
    return text


def _entry(value: Any) -> Entry:
    name, size, digest, at = _fields(_list(value), 4)
    return Entry(_str(name), _int(size), _digest(digest), _float(at))


def _removed(value: Any) -> tuple[str, float]:
    name, at = _fields(_list(value), 2)
    return _str(name), _float(at)
