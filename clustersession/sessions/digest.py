"""Fingerprints of sessions, for anti-entropy: do two nodes hold the same sessions?

A record's digest is the sum (mod 2**64) of a 64-bit hash of its token and of
each ``(field, stamp)`` it holds (attributes, tombstones, route, interval), so it
is updated in O(1) per changed field. A field's hash is its name's (odd) hash times
its stamp folded to 64 bits; a sum of products lets the fields of one write, which
share a stamp, be hashed with one multiplication (:func:`fields_hash`). The store
XORs the digests of the records (and dead ids) of each of 256 buckets; two nodes
compare 256 numbers and then exchange only the buckets that differ. Access times
are not part of it: they travel in their own keep-alive messages and only ever grow.
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


class _NameHashes(dict[str, int]):
    """A bounded memo of name hashes (odd): names repeat across sessions."""

    def __missing__(self, name: str) -> int:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        value = self[name] = token_hash(name) | 1
        return value


NAME_HASHES = _NameHashes()


def stamp_hash(stamp: int) -> int:
    """A stamp folded to 64 bits (0 for "no stamp").

    Stamps of one node differ in their low 64 bits or, if not, in the high bits
    folded onto their node bits, so distinct stamps fold to distinct values except
    by a 2**-32 coincidence between two nodes. Times an odd name hash it is a
    bijection, so a changed stamp always changes the field's hash. Inline
    arithmetic rather than a mixer: this runs for every field of every write.
    """
    return (stamp ^ (stamp >> 64)) & MASK


def field_hash(name: str, stamp: int) -> int:
    """The hash of one stamped field (0 for an unstamped one).

    Not cryptographic: it only has to make two different sessions differ (name
    hashes are random, so a difference hides only by a 2**-64 chance).
    The caller reduces sums mod 2**64.
    """
    return NAME_HASHES[name] * stamp_hash(stamp)


def fields_hash(stamps: dict[str, int]) -> int:
    """The sum of :func:`field_hash` over ``{name: stamp}``, fast when all stamps are one."""
    distinct = set(stamps.values())
    if len(distinct) == 1:
        return stamp_hash(distinct.pop()) * sum(map(NAME_HASHES.__getitem__, stamps))
    return sum(NAME_HASHES[name] * stamp_hash(stamp) for name, stamp in stamps.items())


def token_hash(token: str) -> int:
    """The hash of a session's token (its presence)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")


def dead_hash(token: str) -> int:
    """The hash of an invalidated id's tombstone."""
    return int.from_bytes(hashlib.blake2b(_DEAD + token.encode(), digest_size=8).digest(), "big")


def bucket_of(token: str) -> int:
    """Which of the :data:`BUCKETS` a token belongs to."""
    return zlib.crc32(token.encode()) % BUCKETS
