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


def field_hash(name: str, stamp: int) -> int:
    """The hash of one stamped field (0 contributes nothing for an unstamped one)."""
    if not stamp:
        return 0
    data = name.encode("utf-8", "surrogatepass") + stamp.to_bytes(16, "big")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def token_hash(token: str) -> int:
    """The hash of a session's token (its presence)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")


def dead_hash(token: str) -> int:
    """The hash of an invalidated id's tombstone."""
    return int.from_bytes(hashlib.blake2b(_DEAD + token.encode(), digest_size=8).digest(), "big")


def bucket_of(token: str) -> int:
    """Which of the :data:`BUCKETS` a token belongs to."""
    return zlib.crc32(token.encode()) % BUCKETS
