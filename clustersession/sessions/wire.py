"""The session layer's wire format: changes and messages, carried as channel payloads.

Every node of a cluster must read what the others write, so all of it is here,
with the one error decoding raises (:class:`WireError`); docs/protocol.md
describes the same bytes for people.

Messages are msgpack lists:

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
OWNERS     8   [[token, route, stamp]], [[token, stamp]], [token]     backup manager: where sessions
                                                                      live, dead ids, expired ids
FETCH      9   request id, token                                      backup manager: a proxy's read
FETCHED   10   request id, [change], [[token, stamp]]                 answers FETCH ([]: none)
RESYNC    11   digest, count, [bucket digest] (256 ints)              backup manager: a backup's
                                                                      check of what it holds
=============  =====================================================  ==========================

Kinds 8 to 11 are only sent by ``manager.kind = "backup"``; the first seven are
unchanged, so the wire of a delta cluster is what it was (a node that does not
know a kind drops the message with a logged :class:`WireError`).

Changes are :func:`to_wire` lists; ``[token, stamp]`` pairs are dead ids.
Decoding checks every type and raises :class:`WireError`.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .change import Change
from .digest import BUCKETS

# -- changes ------------------------------------------------------------------

STAMP_BYTES = 12  # stamps outgrow msgpack's 64-bit integers: they travel as bytes
WIRE_FIELDS = 14
WRITE_FIELDS = 5  # the short form of a plain write


def stamp_to_wire(stamp: int) -> bytes:
    """A stamp as 12 big-endian bytes."""
    return stamp.to_bytes(STAMP_BYTES, "big")


def stamp_from_wire(data: Any) -> int:
    """The inverse of :func:`stamp_to_wire`, checked."""
    if not isinstance(data, bytes) or len(data) != STAMP_BYTES:
        raise WireError("a stamp is not 12 bytes")
    return int.from_bytes(data, "big")


def to_wire(change: Change) -> list[Any]:
    """A change as msgpack-ready lists (the session layer's wire format).

    Attributes travel as a map ``{name: value}``: msgpack builds (and interns the
    names of) a dict in C at the other end. Stamps are sent once each, in a table;
    fields refer to them by index (-1: no stamp). A write stamps all its fields
    alike, so the attributes usually share one index. A plain write (values and
    removals under one stamp, nothing else) has a short 5-field form: token,
    accessed_at, stamp, values, removed names (see docs/protocol.md).
    """
    value_stamps = change.value_stamps
    distinct = set(value_stamps.values())
    distinct.update(change.removed.values())
    if (
        len(distinct) == 1
        and change.created_at is None
        and not (change.route_stamp or change.interval_stamp or change.invalidated)
        and not change.full
        and change.renamed_from is None
    ):
        # A plain write (most changes): one stamp for its attributes and removals.
        (stamp,) = distinct
        if stamp:
            return [
                change.token,
                change.accessed_at,
                stamp.to_bytes(STAMP_BYTES, "big"),
                change.values,
                list(change.removed),
            ]
    distinct.update((change.route_stamp, change.interval_stamp, change.invalidated))
    distinct.discard(0)
    table = list(distinct)
    index = {stamp: i for i, stamp in enumerate(table)}
    index[0] = -1
    shared = set(value_stamps.values())
    refs: int | list[int] = (
        index[shared.pop()]
        if len(shared) == 1
        else [index[value_stamps[name]] for name in change.values]
    )
    return [
        change.token,
        change.accessed_at,
        change.created_at,
        change.route,
        change.interval,
        [stamp.to_bytes(STAMP_BYTES, "big") for stamp in table],
        index[change.route_stamp],
        index[change.interval_stamp],
        index[change.invalidated],
        change.values,
        refs,
        {name: index[stamp] for name, stamp in change.removed.items()},
        change.full,
        change.renamed_from,
    ]


class WireError(ValueError):
    """A session message that does not parse; it is dropped and logged."""


_STR_ONLY = {str}
_BYTES_ONLY = {bytes}
_NUMBERS = (int, float)


def _stamp_at(table: list[int], ref: Any) -> int:
    """The stamp a field refers to: -1 is none (0), else an index into the table."""
    if type(ref) is not int or not -1 <= ref < len(table):
        raise WireError("change refers to a stamp it does not carry")
    return 0 if ref < 0 else table[ref]


def _check_values(values: Any) -> None:
    # msgpack (strict_map_key) gives str or bytes keys; attributes need str names.
    if type(values) is not dict:
        raise WireError("change attributes are not a map")
    if values and (
        set(map(type, values)) - _STR_ONLY or set(map(type, values.values())) - _BYTES_ONLY
    ):
        raise WireError("malformed attribute in a change")


def from_wire(data: Any) -> Change:
    """Parse :func:`to_wire`'s form, checking every type.

    msgpack decodes to exact ``list``, ``dict``, ``str``, ``bytes`` and ``int``, so
    exact type checks (``type(x) is``) suffice; the per-attribute ones run in C
    (``map``). This runs for every change received and every session of a state
    transfer.
    """
    if type(data) is not list or len(data) != WIRE_FIELDS:
        if type(data) is list and len(data) == WRITE_FIELDS:
            return _write_from_wire(data)
        raise WireError(f"a change is not a {WIRE_FIELDS}- or {WRITE_FIELDS}-field list")
    (token, accessed, created, route, interval, raw_table, route_ref, interval_ref,
     invalidated_ref, values, refs, removed_refs, full, renamed_from) = data  # fmt: skip
    if type(token) is not str or not isinstance(accessed, _NUMBERS):
        raise WireError("change token or access time has the wrong type")
    if created is not None and not isinstance(created, _NUMBERS):
        raise WireError("change creation time has the wrong type")
    if route is not None:
        if type(route) is not str:
            raise WireError("change route has the wrong type")
        # One string per route, not one per session held (~50 B each: 100,000 copies).
        route = sys.intern(route)
    if interval is not None and type(interval) is not int:
        raise WireError("change interval has the wrong type")
    if renamed_from is not None and type(renamed_from) is not str:
        raise WireError("change renamed_from has the wrong type")
    if type(full) is not bool:
        raise WireError("change 'full' is not a boolean")
    if type(raw_table) is not list:
        raise WireError("change stamp table is not a list")
    table = [stamp_from_wire(raw) for raw in raw_table]
    _check_values(values)
    if type(refs) is list:
        if len(refs) != len(values):
            raise WireError("change attribute stamps do not match its attributes")
        value_stamps = dict(zip(values, [_stamp_at(table, r) for r in refs], strict=True))
    else:
        value_stamps = dict.fromkeys(values, _stamp_at(table, refs))
    if type(removed_refs) is not dict:
        raise WireError("change removals are not a map")
    removed: dict[str, int] = {}
    for name, ref in removed_refs.items():
        if type(name) is not str:
            raise WireError("malformed removal in a change")
        removed[name] = _stamp_at(table, ref)
    # Positional: keyword arguments cost measurably here, once per change received.
    return Change(
        token,
        float(accessed),
        None if created is None else float(created),
        route,
        _stamp_at(table, route_ref),
        interval,
        _stamp_at(table, interval_ref),
        values,
        value_stamps,
        removed,
        _stamp_at(table, invalidated_ref),
        full,
        renamed_from,
        max(table, default=0),
    )


def _write_from_wire(data: list[Any]) -> Change:
    token, accessed, raw, values, removed = data
    if type(token) is not str or not isinstance(accessed, _NUMBERS):
        raise WireError("change token or access time has the wrong type")
    stamp = stamp_from_wire(raw)
    if not stamp:
        raise WireError("a write has no stamp")
    _check_values(values)
    if type(removed) is not list or (removed and set(map(type, removed)) - _STR_ONLY):
        raise WireError("malformed removal in a change")
    return Change(
        token,
        float(accessed),
        None,
        None,
        0,
        None,
        0,
        values,
        dict.fromkeys(values, stamp),
        dict.fromkeys(removed, stamp),
        0,
        False,
        None,
        stamp,
    )


# -- messages -----------------------------------------------------------------


class Kind(enum.IntEnum):
    """Message kinds."""

    DELTA = 1
    TOUCH = 2
    GET_ALL = 3
    ALL_CHUNK = 4
    DIGEST = 5
    SYNC = 6
    RECORDS = 7
    OWNERS = 8
    FETCH = 9
    FETCHED = 10
    RESYNC = 11


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
    owners: list[tuple[str, str | None, int]] = field(default_factory=list)
    """OWNERS: ``(token, route, route stamp)``: the session lives on the node of ``route``."""
    gone: list[str] = field(default_factory=list)
    """OWNERS: ids that expired on their primary."""
    token: str = ""
    digest: int = 0
    count: int = 0


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
    elif kind is Kind.OWNERS:
        owners = [[t, route, stamp_to_wire(stamp)] for t, route, stamp in message.owners]
        body = [owners, dead, message.gone]
    elif kind is Kind.FETCH:
        body = [message.request_id, message.token]
    elif kind is Kind.FETCHED:
        body = [message.request_id, changes, dead]
    elif kind is Kind.RESYNC:
        body = [message.digest, message.count, message.buckets]
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
    elif kind is Kind.OWNERS:
        owners, dead, gone = _fields(body, 3)
        message.owners, message.dead, message.gone = _owners(owners), _dead(dead), _strs(gone)
    elif kind is Kind.FETCH:
        request_id, token = _fields(body, 2)
        message.request_id, message.token = _int(request_id), _str(token)
    elif kind is Kind.FETCHED:
        request_id, changes, dead = _fields(body, 3)
        message.request_id = _int(request_id)
        message.changes, message.dead = _changes(changes), _dead(dead)
    elif kind is Kind.RESYNC:
        # Two fields: a sender from before the per-bucket digests (everything is resent).
        digest, count, *buckets = _fields(body, 3) if len(body) == 3 else _fields(body, 2)
        message.digest, message.count = _int(digest), _int(count)
        message.buckets = _ints(buckets[0]) if buckets else []
        if message.buckets and len(message.buckets) != BUCKETS:
            raise WireError(f"RESYNC has {len(message.buckets)} buckets, expected {BUCKETS}")
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


def _str(value: Any) -> str:
    if type(value) is not str:
        raise WireError(f"expected a string, got {type(value).__name__}")
    return value


def _strs(values: Any) -> list[str]:
    if type(values) is not list:
        raise WireError("expected a list of strings")
    return [_str(v) for v in values]


def _owners(values: Any) -> list[tuple[str, str | None, int]]:
    if type(values) is not list:
        raise WireError("expected a list of owner entries")
    owners = []
    for item in values:
        if not (type(item) is list and len(item) == 3 and type(item[0]) is str):
            raise WireError("malformed owner entry")
        if item[1] is not None and type(item[1]) is not str:
            raise WireError("owner entry route has the wrong type")
        route = item[1] if item[1] is None else sys.intern(item[1])
        owners.append((item[0], route, stamp_from_wire(item[2])))
    return owners


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
