"""msgpack encoding of session values.

Session values travel between nodes and live in the store as bytes, so what a
session may hold is what this codec can encode: msgpack's own types (``None``,
``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``, ``dict`` with any of
these as keys) plus a few extension types that web apps commonly keep in a session:

=====================  ===================================================
Python type            round trip
=====================  ===================================================
``tuple``              comes back as ``list`` (as with JSON sessions)
``datetime.datetime``  exact, naive or timezone-aware (fixed offset)
``datetime.date``      exact
``uuid.UUID``          exact
``decimal.Decimal``    exact
``set``/``frozenset``  exact
=====================  ===================================================

Anything else raises :class:`TypeError` naming the type. Never pickle: decoding
bytes from a peer must not be able to run code.
"""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import msgpack

# Extension type codes: part of the wire format (docs/protocol.md), never renumber.
_EXT_DATETIME = 1
_EXT_DATE = 2
_EXT_UUID = 3
_EXT_DECIMAL = 4
_EXT_SET = 5
_EXT_FROZENSET = 6


class CodecError(ValueError):
    """Bytes that do not decode to a session value."""


def _default(obj: object) -> msgpack.ExtType:
    # datetime is a subclass of date, so it must be tested first.
    if isinstance(obj, dt.datetime):
        offset = obj.utcoffset()
        seconds = None if offset is None else int(offset.total_seconds())
        naive = obj.replace(tzinfo=None).isoformat()
        return msgpack.ExtType(_EXT_DATETIME, _packb([naive, seconds]))
    if isinstance(obj, dt.date):
        return msgpack.ExtType(_EXT_DATE, obj.isoformat().encode())
    if isinstance(obj, uuid.UUID):
        return msgpack.ExtType(_EXT_UUID, obj.bytes)
    if isinstance(obj, decimal.Decimal):
        return msgpack.ExtType(_EXT_DECIMAL, str(obj).encode())
    if isinstance(obj, frozenset):
        return msgpack.ExtType(_EXT_FROZENSET, _packb(list(obj)))
    if isinstance(obj, set):
        return msgpack.ExtType(_EXT_SET, _packb(list(obj)))
    if isinstance(obj, int):  # msgpack hands over the ints beyond its 64 bits
        raise TypeError(f"integer {obj} is out of range (-2**63 .. 2**64-1)")
    raise TypeError(f"type {type(obj).__module__}.{type(obj).__qualname__} is not serialisable")


def _ext_hook(code: int, data: bytes) -> object:
    if code == _EXT_DATETIME:
        naive, seconds = _unpackb(data)
        value = dt.datetime.fromisoformat(naive)
        if seconds is None:
            return value
        return value.replace(tzinfo=dt.timezone(dt.timedelta(seconds=seconds)))
    if code == _EXT_DATE:
        return dt.date.fromisoformat(data.decode())
    if code == _EXT_UUID:
        return uuid.UUID(bytes=data)
    if code == _EXT_DECIMAL:
        return decimal.Decimal(data.decode())
    if code == _EXT_SET:
        return set(_unpackb(data))
    if code == _EXT_FROZENSET:
        return frozenset(_unpackb(data))
    raise CodecError(f"unknown extension type {code}")


def _packb(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, default=_default, use_bin_type=True, datetime=False)
    return packed


def _unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=False)


# One Packer per thread: building a Packer per call costs more than packing a small
# value. Not shared across threads (WSGI workers), and not reentrant, which is why
# _default() packs extension payloads with _packb() instead.
_local = threading.local()


def packer() -> Any:
    """This thread's ``msgpack.Packer`` as :func:`encode` uses it, for a loop of encodes.

    Its ``pack`` raises what msgpack raises (no ``TypeError`` translation): on a
    failure, call :func:`encode` for the same value, which also replaces the packer.
    """
    found = getattr(_local, "packer", None)
    if found is None:
        found = _local.packer = msgpack.Packer(default=_default, use_bin_type=True, datetime=False)
    return found


def encode(value: object) -> bytes:
    """Encode one session value; raise ``TypeError`` naming the offending type."""
    try:
        packed: bytes = packer().pack(value)
        return packed
    except OverflowError as exc:  # an int beyond msgpack's 64 bits
        _local.packer = None  # a failed pack may leave bytes in its buffer
        raise TypeError(f"value out of range: {exc}") from exc
    except BaseException:
        _local.packer = None
        raise


def _map_header(size: int) -> bytes:
    if size < 16:
        return bytes([0x80 | size])
    if size < 1 << 16:
        return b"\xde" + size.to_bytes(2, "big")
    return b"\xdf" + size.to_bytes(4, "big")


def join_map(values: Mapping[str, bytes]) -> bytes:
    """One msgpack map of already encoded values: decoded by one call, not one per key."""
    parts = [_map_header(len(values))]
    cache = _KEY_BYTES
    for key, value in values.items():
        packed_key = cache.get(key)
        if packed_key is None:
            if len(cache) >= 4096:  # keys repeat across sessions; bound the odd ones
                cache.clear()
            packed_key = cache[key] = _packb(key)
        parts.append(packed_key)
        parts.append(value)
    return b"".join(parts)


_KEY_BYTES: dict[str, bytes] = {}


def decode(data: bytes) -> Any:
    """Decode bytes made by :func:`encode`; raise :class:`CodecError` on bad input."""
    try:
        # msgpack called here rather than through _unpackb: one frame less per value read.
        return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=False)
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise CodecError(f"malformed session value: {exc}") from exc
