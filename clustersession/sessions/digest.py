"""Fingerprints of sessions, for anti-entropy: do two nodes hold the same sessions?

A record's digest is the XOR of a 64-bit hash of its token and of each
``(field, stamp)`` it holds (attributes, tombstones, route, interval), so it is
updated in O(1) per changed field. The store XORs the digests of the records
(and dead ids) of each of 256 buckets; two nodes compare 256 numbers and then
exchange only the buckets that differ. Access times are not part of it: they
travel in their own keep-alive messages and only ever grow.
"""

from __future__ import annotations

import hashlib
import zlib

BUCKETS = 256
ROUTE_FIELD = "\x00route"
INTERVAL_FIELD = "\x00interval"
_DEAD = b"\x00dead:"


_MASK = (1 << 64) - 1
_NAMES: dict[str, int] = {}


def _mix(value: int) -> int:
    # splitmix64's finaliser: spreads every input bit over the 64 output bits.
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def field_hash(name: str, stamp: int) -> int:
    """The hash of one stamped field (0 contributes nothing for an unstamped one).

    Not cryptographic: it only has to make two different sessions differ, and it
    runs for every field of every write, so it is integer arithmetic on the stamp
    and a cached hash of the name (names repeat across sessions).
    """
    if not stamp:
        return 0
    named = _NAMES.get(name)
    if named is None:
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        named = _NAMES[name] = token_hash(name)
    return _mix(named ^ (stamp & _MASK) ^ (((stamp >> 64) * 0x9E3779B97F4A7C15) & _MASK))


def token_hash(token: str) -> int:
    """The hash of a session's token (its presence)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")


def dead_hash(token: str) -> int:
    """The hash of an invalidated id's tombstone."""
    return int.from_bytes(hashlib.blake2b(_DEAD + token.encode(), digest_size=8).digest(), "big")


def bucket_of(token: str) -> int:
    """Which of the :data:`BUCKETS` a token belongs to."""
    return zlib.crc32(token.encode()) % BUCKETS
