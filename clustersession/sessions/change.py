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

import sys
from dataclasses import dataclass, field
from typing import Any

from .digest import INTERVAL_FIELD, ROUTE_FIELD, field_hash, token_hash
from .record import SessionRecord


@dataclass(slots=True)
class Change:
    """What one write did to one session, stamped; also a whole session (``full``)."""

    token: str
    accessed_at: float
    created_at: float | None = None
    route: str | None = None
    route_stamp: int = 0
    interval: int | None = None
    interval_stamp: int = 0
    set: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    invalidated: int = 0  # the stamp of the invalidation, 0 if none
    full: bool = False  # a snapshot of the whole session (transfer, repair, rename)
    renamed_from: str | None = None  # regenerate_id(): the old token, now dead

    @property
    def is_access_only(self) -> bool:
        """Whether it only says the session was used."""
        return not (
            self.created_at is not None
            or self.route_stamp
            or self.interval_stamp
            or self.set
            or self.removed
            or self.invalidated
            or self.full
            or self.renamed_from
        )

    def stamps(self) -> list[int]:
        """Every stamp it carries (for the receiver's clock)."""
        found = [s for s, _ in self.set.values()]
        found += self.removed.values()
        found += [s for s in (self.route_stamp, self.interval_stamp, self.invalidated) if s]
        return found


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
        set={k: (record.stamps.get(k, 0), v) for k, v in record.attributes.items()},
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
    digest ^= field_hash(ROUTE_FIELD, record.route_stamp)
    digest ^= field_hash(INTERVAL_FIELD, record.interval_stamp)
    for name, stamp in record.stamps.items():
        digest ^= field_hash(name, stamp)
    for name, stamp in record.removed.items():
        digest ^= field_hash(name, stamp)
    return digest


def merge(record: SessionRecord, change: Change) -> Effect:
    """Fold ``change`` into ``record``: per field, the higher stamp wins."""
    effect: Effect = []
    if change.accessed_at > record.last_accessed_at:
        record.last_accessed_at = change.accessed_at
    if change.created_at is not None and change.created_at < record.created_at:
        record.created_at = change.created_at
    digest = record.digest
    if change.route_stamp > record.route_stamp:
        digest ^= field_hash(ROUTE_FIELD, record.route_stamp)
        digest ^= field_hash(ROUTE_FIELD, change.route_stamp)
        record.route, record.route_stamp = change.route, change.route_stamp
    if change.interval_stamp > record.interval_stamp and change.interval is not None:
        digest ^= field_hash(INTERVAL_FIELD, record.interval_stamp)
        digest ^= field_hash(INTERVAL_FIELD, change.interval_stamp)
        record.max_inactive_interval, record.interval_stamp = change.interval, change.interval_stamp
    attributes, stamps, removed = record.attributes, record.stamps, record.removed
    for name, (stamp, value) in change.set.items():
        current = max(stamps.get(name, 0), removed.get(name, 0))
        if stamp <= current:
            continue
        if current:
            digest ^= field_hash(name, current)
        digest ^= field_hash(name, stamp)
        old = attributes.get(name)
        attributes[name] = value
        stamps[name] = stamp
        removed.pop(name, None)
        if old is None:
            effect.append(("attribute_added", name, value, None))
        elif old != value:
            effect.append(("attribute_replaced", name, value, old))
    for name, stamp in change.removed.items():
        current = max(stamps.get(name, 0), removed.get(name, 0))
        if stamp <= current:
            continue
        if current:
            digest ^= field_hash(name, current)
        digest ^= field_hash(name, stamp)
        removed[name] = stamp
        stamps.pop(name, None)
        old = attributes.pop(name, None)
        if old is not None:
            effect.append(("attribute_removed", name, None, old))
    if effect:
        record.packed = None
    record.digest = digest
    return effect


# -- wire form ----------------------------------------------------------------


STAMP_BYTES = 12  # stamps outgrow msgpack's 64-bit integers: they travel as bytes


def stamp_to_wire(stamp: int) -> bytes:
    """A stamp as 12 big-endian bytes."""
    return stamp.to_bytes(STAMP_BYTES, "big")


def stamp_from_wire(data: Any) -> int:
    """The inverse of :func:`stamp_to_wire`, checked."""
    if not isinstance(data, bytes) or len(data) != STAMP_BYTES:
        raise WireError("a stamp is not 12 bytes")
    return int.from_bytes(data, "big")


def to_wire(change: Change) -> list[Any]:
    """A change as msgpack-ready lists (the session layer's wire format)."""
    # Inline to_bytes, and one bytes object per distinct stamp: a write's fields share
    # one, and this runs for every field of every session in a state transfer.
    encoded: dict[int, bytes] = {}

    def s(stamp: int) -> bytes:
        data = encoded.get(stamp)
        if data is None:
            data = encoded[stamp] = stamp.to_bytes(STAMP_BYTES, "big")
        return data

    return [
        change.token,
        change.accessed_at,
        change.created_at,
        change.route,
        s(change.route_stamp),
        change.interval,
        s(change.interval_stamp),
        [[k, s(stamp), v] for k, (stamp, v) in change.set.items()],
        [[k, s(stamp)] for k, stamp in change.removed.items()],
        s(change.invalidated),
        change.full,
        change.renamed_from,
    ]


class WireError(ValueError):
    """A session message that does not parse; it is dropped and logged."""


def from_wire(data: Any) -> Change:
    """Parse :func:`to_wire`'s form, checking every type."""
    if not isinstance(data, list) or len(data) != 12:
        raise WireError("a change is not a 12-field list")
    token, accessed, created, route, route_stamp, interval, interval_stamp = data[:7]
    sets, removes, invalidated, full, renamed_from = data[7:]
    if renamed_from is not None and not isinstance(renamed_from, str):
        raise WireError("change renamed_from has the wrong type")
    if not isinstance(token, str) or not isinstance(accessed, int | float):
        raise WireError("change token or access time has the wrong type")
    if created is not None and not isinstance(created, int | float):
        raise WireError("change creation time has the wrong type")
    if route is not None and not isinstance(route, str):
        raise WireError("change route has the wrong type")
    if interval is not None and not isinstance(interval, int):
        raise WireError("change interval has the wrong type")
    route_stamp, interval_stamp = stamp_from_wire(route_stamp), stamp_from_wire(interval_stamp)
    invalidated = stamp_from_wire(invalidated)
    if not isinstance(sets, list) or not isinstance(removes, list) or not isinstance(full, bool):
        raise WireError("change attribute lists have the wrong type")
    set_values: dict[str, tuple[int, bytes]] = {}
    shared: dict[bytes, int] = {}  # a write's fields share one stamp: keep one int for them
    intern = sys.intern
    for item in sets:
        # Exact types: msgpack decodes to plain list, str and bytes (and this loop runs
        # for every field of every session in a state transfer).
        if type(item) is not list or len(item) != 3:
            raise WireError("malformed attribute in a change")
        name, raw, value = item
        if type(name) is not str or type(value) is not bytes or type(raw) is not bytes:
            raise WireError("malformed attribute in a change")
        stamp = shared.get(raw)
        if stamp is None:
            stamp = shared[raw] = stamp_from_wire(raw)
        set_values[intern(name)] = (stamp, value)
    removed: dict[str, int] = {}
    for item in removes:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise WireError("malformed removal in a change")
        removed[item[0]] = stamp_from_wire(item[1])
    return Change(
        token=token,
        accessed_at=float(accessed),
        created_at=None if created is None else float(created),
        route=route,
        route_stamp=route_stamp,
        interval=interval,
        interval_stamp=interval_stamp,
        set=set_values,
        removed=removed,
        invalidated=invalidated,
        full=full,
        renamed_from=renamed_from,
    )
