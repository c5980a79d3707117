"""Stamped changes to sessions, and the merge that makes every node converge.

A session is a last-writer-wins map: every attribute value, every removal (a
tombstone), the route and the idle interval carry the stamp of the write that
set them (:mod:`.clock`), and a node keeps, for each, the one with the highest
stamp. Applying a :class:`Change` is therefore idempotent, commutative and
associative: nodes that saw the same changes hold the same sessions, whatever the
order or duplication of delivery. ``last_accessed_at`` only grows. An invalidated
session leaves a tombstone of its own (kept by the manager), so no late or
replayed change can bring it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .digest import (
    INTERVAL_FIELD,
    MASK,
    NAME_HASHES,
    ROUTE_FIELD,
    field_hash,
    fields_hash,
    token_hash,
)
from .record import SessionRecord


@dataclass(slots=True)
class Change:
    """What one write did to one session, stamped; also a whole session (``full``).

    ``values`` are the attributes it sets (encoded) and ``value_stamps`` their
    stamps, with the same keys: two plain dicts rather than one of pairs, so that a
    whole session is copied, sent and received without a Python loop per attribute.
    """

    token: str
    accessed_at: float
    created_at: float | None = None
    route: str | None = None
    route_stamp: int = 0
    interval: int | None = None
    interval_stamp: int = 0
    values: dict[str, bytes] = field(default_factory=dict)
    value_stamps: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    invalidated: int = 0  # the stamp of the invalidation, 0 if none
    full: bool = False  # a snapshot of the whole session (transfer, repair, rename)
    renamed_from: str | None = None  # regenerate_id(): the old token, now dead
    # The highest stamp, when known: set on receipt, from the stamp table.
    top: int = field(default=0, compare=False)

    def put(self, name: str, stamp: int, value: bytes) -> None:
        """Set one attribute."""
        self.values[name] = value
        self.value_stamps[name] = stamp

    @property
    def is_access_only(self) -> bool:
        """Whether it only says the session was used."""
        return not (
            self.created_at is not None
            or self.route_stamp
            or self.interval_stamp
            or self.values
            or self.removed
            or self.invalidated
            or self.full
            or self.renamed_from
        )

    def highest_stamp(self) -> int:
        """The highest stamp it carries (for the receiver's clock), 0 if none."""
        return self.top or max(
            max(self.value_stamps.values(), default=0),
            max(self.removed.values(), default=0),
            self.route_stamp,
            self.interval_stamp,
            self.invalidated,
        )


# What merging a change did, in order, for listeners: (kind, name, new value, old value).
Effect = list[tuple[str, str, bytes | None, bytes | None]]


def snapshot(record: SessionRecord) -> Change:
    """The whole session as one change (the same values, stamps and tombstones)."""
    return Change(
        token=record.token,
        accessed_at=record.last_accessed_at,
        created_at=record.created_at,
        route=record.route,
        route_stamp=record.route_stamp,
        interval=record.max_inactive_interval,
        interval_stamp=record.interval_stamp,
        values=dict(record.attributes),
        value_stamps=dict(record.stamps),
        removed=dict(record.removed),
        full=True,
    )


def new_record(change: Change, default_interval: int) -> SessionRecord:
    """An empty record for a session that a change creates."""
    record = SessionRecord(
        token=change.token,
        route=change.route,
        created_at=change.created_at if change.created_at is not None else change.accessed_at,
        last_accessed_at=change.accessed_at,
        max_inactive_interval=change.interval if change.interval is not None else default_interval,
    )
    record.digest = token_hash(change.token)
    return record


def full_digest(record: SessionRecord) -> int:
    """A record's digest computed from scratch (after its token changed)."""
    digest = token_hash(record.token)
    digest += field_hash(ROUTE_FIELD, record.route_stamp)
    digest += field_hash(INTERVAL_FIELD, record.interval_stamp)
    digest += fields_hash(record.stamps) + fields_hash(record.removed)
    return digest & MASK


def merge(record: SessionRecord, change: Change, *, effects: bool = True) -> Effect:
    """Fold ``change`` into ``record``: per field, the higher stamp wins.

    Returns what changed for listeners (only when ``effects``, which costs a tuple
    per attribute). A record's digest is the sum of its fields' hashes (see
    :mod:`.digest`), so it follows each field's stamp here in O(1).
    """
    effect: Effect = []
    if change.accessed_at > record.last_accessed_at:
        record.last_accessed_at = change.accessed_at
    if change.created_at is not None and change.created_at < record.created_at:
        record.created_at = change.created_at
    digest = record.digest
    if change.route_stamp > record.route_stamp:
        digest -= field_hash(ROUTE_FIELD, record.route_stamp)
        digest += field_hash(ROUTE_FIELD, change.route_stamp)
        record.route, record.route_stamp = change.route, change.route_stamp
    if change.interval_stamp > record.interval_stamp and change.interval is not None:
        digest -= field_hash(INTERVAL_FIELD, record.interval_stamp)
        digest += field_hash(INTERVAL_FIELD, change.interval_stamp)
        record.max_inactive_interval, record.interval_stamp = change.interval, change.interval_stamp
    attributes, stamps, removed = record.attributes, record.stamps, record.removed
    values, value_stamps = change.values, change.value_stamps
    if values and not stamps and not removed and 0 not in value_stamps.values():
        # A session's first values (creation, state transfer): taken whole, in C.
        attributes.update(values)
        stamps.update(value_stamps)
        digest += fields_hash(value_stamps)
        if effects:
            effect = [("attribute_added", n, v, None) for n, v in values.items()]
    else:
        for name, stamp in value_stamps.items():
            current = stamps.get(name, 0)
            if removed:
                current = max(current, removed.get(name, 0))
            if stamp <= current:
                continue
            # field_hash(name, stamp) - field_hash(name, current), inline: the hot path
            digest += NAME_HASHES[name] * (
                ((stamp ^ (stamp >> 64)) & MASK) - ((current ^ (current >> 64)) & MASK)
            )
            value = values[name]
            old = attributes.get(name)
            attributes[name] = value
            stamps[name] = stamp
            if removed:
                removed.pop(name, None)
            if not effects:
                continue
            if old is None:
                effect.append(("attribute_added", name, value, None))
            elif old != value:
                effect.append(("attribute_replaced", name, value, old))
    for name, stamp in change.removed.items():
        current = max(stamps.get(name, 0), removed.get(name, 0))
        if stamp <= current:
            continue
        # field_hash(name, stamp) - field_hash(name, current), inline: the hot path
        digest += NAME_HASHES[name] * (
            ((stamp ^ (stamp >> 64)) & MASK) - ((current ^ (current >> 64)) & MASK)
        )
        removed[name] = stamp
        stamps.pop(name, None)
        old = attributes.pop(name, None)
        if effects and old is not None:
            effect.append(("attribute_removed", name, None, old))
    record.digest = digest & MASK
    return effect


# -- wire form ----------------------------------------------------------------


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
    if route is not None and type(route) is not str:
        raise WireError("change route has the wrong type")
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
