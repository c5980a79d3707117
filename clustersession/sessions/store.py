"""The in-memory session table of one node."""

from __future__ import annotations

from collections.abc import Iterator

from .digest import BUCKETS, bucket_of, dead_hash
from .record import SessionRecord


class SessionStore:
    """Sessions by token: O(1) lookup, insert and removal.

    Plain data, no locking: it is only touched from the node's event loop.
    """

    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}
        # XOR of the digests of the records and dead ids in each bucket (see .digest)
        self.buckets = [0] * BUCKETS

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, token: object) -> bool:
        return token in self._records

    def __iter__(self) -> Iterator[SessionRecord]:
        return iter(self._records.values())

    def get(self, token: str) -> SessionRecord | None:
        """The record for ``token``, expired or not."""
        return self._records.get(token)

    def put(self, record: SessionRecord) -> None:
        """Insert a record (its token must not be stored yet)."""
        assert record.token not in self._records
        self._records[record.token] = record
        record.bucket = bucket_of(record.token)
        self.buckets[record.bucket] ^= record.digest

    def pop(self, token: str) -> SessionRecord | None:
        """Remove and return a record, if present."""
        record = self._records.pop(token, None)
        if record is not None:
            self.buckets[record.bucket] ^= record.digest
        return record

    def digest_changed(self, record: SessionRecord, before: int) -> None:
        """A stored record's digest went from ``before`` to ``record.digest``."""
        self.buckets[record.bucket] ^= before ^ record.digest

    def dead(self, token: str) -> None:
        """Count an invalidated id in (or, called again, out of) its bucket."""
        self.buckets[bucket_of(token)] ^= dead_hash(token)

    def in_buckets(self, buckets: set[int]) -> list[SessionRecord]:
        """Every record in the given buckets."""
        return [r for r in self._records.values() if r.bucket in buckets]
