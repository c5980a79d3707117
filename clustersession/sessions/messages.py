"""The session layer's messages, carried as channel payloads (msgpack lists).

=============  =====================================================  ==========================
kind           fields                                                 sent
=============  =====================================================  ==========================
DELTA      1   seq, [change]                                          after each writing request
TOUCH      2   [[token, accessed_at]]                                 every keep-alive period
GET_ALL    3   request id                                             by a joining node
ALL_CHUNK  4   request id, index, last, [change], [[token, stamp]]    answers GET_ALL, in chunks
DIGEST     5   [bucket digest] (256 ints)                             every anti-entropy round
SYNC       6   [wanted bucket], [change], [[token, stamp]]            answers a DIGEST that differs
RECORDS    7   [change], [[token, stamp]]                             answers SYNC's wanted buckets
=============  =====================================================  ==========================

Changes are :func:`.change.to_wire` lists; ``[token, stamp]`` pairs are dead ids.
Decoding checks every type and raises :class:`~.change.WireError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .change import Change, WireError, from_wire, stamp_from_wire, stamp_to_wire, to_wire
from .digest import BUCKETS


class Kind(enum.IntEnum):
    """Message kinds."""

    DELTA = 1
    TOUCH = 2
    GET_ALL = 3
    ALL_CHUNK = 4
    DIGEST = 5
    SYNC = 6
    RECORDS = 7


@dataclass(slots=True)
class Message:
    """A decoded session message; which fields are used depends on ``kind``."""

    kind: Kind
    seq: int = 0
    request_id: int = 0
    index: int = 0
    last: bool = False
    changes: list[Change] = field(default_factory=list)
    dead: list[tuple[str, int]] = field(default_factory=list)
    touches: list[tuple[str, float]] = field(default_factory=list)
    buckets: list[int] = field(default_factory=list)


def encode(message: Message) -> bytes:
    """The payload bytes of a message."""
    changes = [to_wire(c) for c in message.changes]
    dead = [[token, stamp_to_wire(stamp)] for token, stamp in message.dead]
    kind = message.kind
    body: list[Any]
    if kind is Kind.DELTA:
        body = [message.seq, changes]
    elif kind is Kind.TOUCH:
        body = [[list(t) for t in message.touches]]
    elif kind is Kind.GET_ALL:
        body = [message.request_id]
    elif kind is Kind.ALL_CHUNK:
        body = [message.request_id, message.index, message.last, changes, dead]
    elif kind is Kind.DIGEST:
        body = [message.buckets]
    elif kind is Kind.SYNC:
        body = [message.buckets, changes, dead]
    else:
        body = [changes, dead]
    packed: bytes = msgpack.packb([int(kind), *body], use_bin_type=True)
    return packed


def decode(payload: bytes) -> Message:
    """Parse a payload; :class:`WireError` says what is wrong."""
    try:
        data = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise WireError(f"session message is not msgpack: {exc}") from exc
    if not isinstance(data, list) or not data or not isinstance(data[0], int):
        raise WireError("session message is not a list starting with its kind")
    try:
        kind = Kind(data[0])
    except ValueError:
        raise WireError(f"unknown session message kind {data[0]!r}") from None
    body = data[1:]
    message = Message(kind)
    if kind is Kind.DELTA:
        seq, changes = _fields(body, 2)
        message.seq = _int(seq)
        message.changes = _changes(changes)
    elif kind is Kind.TOUCH:
        (touches,) = _fields(body, 1)
        message.touches = _touches(touches)
    elif kind is Kind.GET_ALL:
        (request_id,) = _fields(body, 1)
        message.request_id = _int(request_id)
    elif kind is Kind.ALL_CHUNK:
        request_id, index, last, changes, dead = _fields(body, 5)
        message.request_id, message.index = _int(request_id), _int(index)
        if not isinstance(last, bool):
            raise WireError("ALL_CHUNK 'last' is not a boolean")
        message.last = last
        message.changes, message.dead = _changes(changes), _dead(dead)
    elif kind is Kind.DIGEST:
        (buckets,) = _fields(body, 1)
        message.buckets = _ints(buckets)
        if len(message.buckets) != BUCKETS:
            raise WireError(f"DIGEST has {len(message.buckets)} buckets, expected {BUCKETS}")
    elif kind is Kind.SYNC:
        buckets, changes, dead = _fields(body, 3)
        message.buckets = _ints(buckets)
        message.changes, message.dead = _changes(changes), _dead(dead)
    else:
        changes, dead = _fields(body, 2)
        message.changes, message.dead = _changes(changes), _dead(dead)
    return message


def _fields(body: list[Any], count: int) -> list[Any]:
    if len(body) != count:
        raise WireError(f"session message has {len(body)} fields, expected {count}")
    return body


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"expected an integer, got {type(value).__name__}")
    return value


def _ints(values: Any) -> list[int]:
    if not isinstance(values, list):
        raise WireError("expected a list of integers")
    return [_int(v) for v in values]


def _changes(values: Any) -> list[Change]:
    if not isinstance(values, list):
        raise WireError("expected a list of changes")
    return [from_wire(v) for v in values]


def _dead(values: Any) -> list[tuple[str, int]]:
    if not isinstance(values, list):
        raise WireError("expected a list of dead ids")
    dead = []
    for item in values:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise WireError("malformed dead id")
        dead.append((item[0], stamp_from_wire(item[1])))
    return dead


def _touches(values: Any) -> list[tuple[str, float]]:
    if not isinstance(values, list):
        raise WireError("expected a list of touches")
    touches = []
    for item in values:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int | float)
        ):
            raise WireError("malformed touch")
        touches.append((item[0], float(item[1])))
    return touches
