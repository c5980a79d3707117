"""Fingerprints of sessions, for anti-entropy: do two nodes hold the same sessions?

A record's digest is the sum (mod 2**64) of a 64-bit hash of its token and of
each ``(field, stamp)`` it holds (attributes, tombstones, route, interval), so it
is updated in O(1) per changed field. A field's hash is its name's hash times its
stamp's hash (both odd, so different stamps of one name never collide); a sum of
products lets the fields of one write, which share a stamp, be hashed with one
multiplication (:func:`fields_hash`). The store XORs the digests of the records
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
MASK = (1 << 64) - 1
_DEAD = b"\x00dead:"
_CACHE_LIMIT = 1 << 16


def _mix(value: int) -> int:
    # splitmix64's finaliser: spreads every input bit over the 64 output bits.
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK
    return value ^ (value >> 31)


class _Hashes(dict[object, int]):
    """A bounded memo: names repeat across sessions, and a write's stamp across its fields."""

    def __missing__(self, key: object) -> int:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        if isinstance(key, str):
            value = token_hash(key) | 1
        else:
            assert isinstance(key, int)
            value = (_mix((key & MASK) ^ (((key >> 64) * 0x9E3779B97F4A7C15) & MASK)) << 1) | 1
        self[key] = value
        return value


_NAMES = _Hashes()
_STAMPS = _Hashes()


def field_hash(name: str, stamp: int) -> int:
    """The hash of one stamped field (0 contributes nothing for an unstamped one).

    Not cryptographic: it only has to make two different sessions differ, and it
    runs for every field of every write. The caller reduces sums mod 2**64.
    """
    if not stamp:
        return 0
    return _NAMES[name] * _STAMPS[stamp]


def fields_hash(stamps: dict[str, int]) -> int:
    """The sum of :func:`field_hash` over ``{name: stamp}``, fast when all stamps are one."""
    distinct = set(stamps.values())
    if len(distinct) == 1:
        stamp = distinct.pop()
        return _STAMPS[stamp] * sum(map(_NAMES.__getitem__, stamps)) if stamp else 0
    return sum(_NAMES[name] * _STAMPS[stamp] for name, stamp in stamps.items() if stamp)


def token_hash(token: str) -> int:
    """The hash of a session's token (its presence)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")


def dead_hash(token: str) -> int:
    """The hash of an invalidated id's tombstone."""
    return int.from_bytes(hashlib.blake2b(_DEAD + token.encode(), digest_size=8).digest(), "big")


def bucket_of(token: str) -> int:
    """Which of the :data:`BUCKETS` a token belongs to."""
    return zlib.crc32(token.encode()) % BUCKETS
