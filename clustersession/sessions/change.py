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

from .digest import (
    INTERVAL_FIELD,
    MASK,
    NAME_HASHES,
    ROUTE_FIELD,
    field_hash,
    fields_hash,
    token_hash,
)
from .record import UNDECODED, SessionRecord


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
    # A record's attributes are replaced, never changed in place (see SessionRecord):
    # copied before the first change below, once per merge. What requests start from
    # (record.undecoded) is copied with them, if a request read this version: the
    # values decoded already of the keys this change leaves alone are still good, the
    # others are UNDECODED again (the copy is the record's own from then on).
    copied = False
    undecoded = record.undecoded
    before = undecoded[1] if undecoded is not None and undecoded[0] is attributes else None
    prepared: dict[str, object] | None = None
    if values and not stamps and not removed and 0 not in value_stamps.values():
        # A session's first values (creation, state transfer): taken whole, in C.
        # A new dict, so the removals below change it in place (not the old one).
        attributes = record.attributes = {**attributes, **values} if attributes else dict(values)
        record.undecoded, copied = None, True
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
            if not copied:
                attributes = record.attributes = dict(attributes)
                record.undecoded, copied = None, True
                prepared = before.copy() if before is not None else None
            attributes[name] = value
            if prepared is not None:
                prepared[name] = UNDECODED
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
        if not copied and name in attributes:
            attributes = record.attributes = dict(attributes)
            record.undecoded, copied = None, True
            prepared = before.copy() if before is not None else None
        old = attributes.pop(name, None)
        if prepared is not None:
            prepared.pop(name, None)
        if effects and old is not None:
            effect.append(("attribute_removed", name, None, old))
    if prepared is not None:
        record.undecoded = (attributes, prepared, True)
    record.digest = digest & MASK
    return effect
