"""The in-memory session table of one node."""

from __future__ import annotations

from collections.abc import Iterator

from .record import SessionRecord


class SessionStore:
    """Sessions by token: O(1) lookup, insert and removal.

    Plain data, no locking: it is only touched from the node's event loop.
    """

    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}

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
        """Insert or replace a record."""
        self._records[record.token] = record

    def pop(self, token: str) -> SessionRecord | None:
        """Remove and return a record, if present."""
        return self._records.pop(token, None)

    def expired(self, now: float) -> list[SessionRecord]:
        """Records idle past their interval at ``now``."""
        return [r for r in self._records.values() if r.is_expired(now)]
