"""Where a session's copies live: rendezvous (highest random weight) hashing.

Every node ranks the members for a session id by a hash of (member id, session
id) and takes the top of the ranking, so all nodes that see the same members
agree without talking, the copies spread evenly, and a member that joins or
leaves moves only the sessions it ranks first for (about 1/n of them), never
reshuffles the rest (unlike Tomcat's round robin). Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(member_id: bytes, token: str) -> int:
    """The rank of ``member_id`` for session ``token`` (higher ranks first)."""
    digest = hashlib.blake2b(token.encode(), digest_size=8, key=member_id[:64]).digest()
    return int.from_bytes(digest, "big")


def ranking(token: str, member_ids: Iterable[bytes]) -> list[bytes]:
    """``member_ids`` in the order they are chosen for ``token`` (ties by id)."""
    ids = list(member_ids)
    if len(ids) < 2:
        return ids  # nothing to order: no hash (2 nodes with one backup, every write)
    return sorted(ids, key=lambda m: (weight(m, token), m), reverse=True)


def backups(
    token: str, primary: bytes | None, member_ids: Iterable[bytes], count: int
) -> list[bytes]:
    """The ``count`` members after ``primary`` (excluded) that hold copies of ``token``."""
    return ranking(token, [m for m in member_ids if m != primary])[:count]
