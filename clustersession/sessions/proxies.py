"""The backup manager's proxy entries: where each session held elsewhere lives.

A backup node holds a proxy entry for most sessions of the cluster (at 8 nodes
and one backup, three in four), so an entry must cost little next to a copy
(~1.6 KB for a ~400 B session). An entry is one ``int`` in a ``dict``: the
route stamp, with the index of the primary's route in a small table above its
bits; no tuple, no route string per entry (a decoded message makes one per
session). The key is the token's bytes as an ``int`` when the token is base64url
as ours are (a 44-character signed token: a 60-byte int, not a 93-byte str).
~310 B of RSS per entry became ~160 B (``python -m bench.memory``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

STAMP_BITS = 96  # the wire's 12-byte stamps (see .wire.STAMP_BYTES)
_STAMP_MASK = (1 << STAMP_BITS) - 1
_ROUTES_COMPACTED_AT = 1024  # routes in the table before unused ones are first dropped
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{16,}")  # shorter tokens are no smaller as an int


def token_key(token: str) -> int | str:
    """The key of ``token``: a base64url one as the int of its bytes, others as they are.

    Padded with ``A`` (zero bits) to a multiple of 4 characters, a base64url string
    and its bytes map one to one; the int has a 1 bit above the bytes (their
    length) and the padding in its 2 lowest bits. An int never equals a str key.
    """
    if not _BASE64URL.fullmatch(token):
        return token
    pad = -len(token) % 4
    raw = base64.urlsafe_b64decode(token + "A" * pad)
    return ((1 << 8 * len(raw) | int.from_bytes(raw, "big")) << 2) | pad


def key_token(key: int | str) -> str:
    """The inverse of :func:`token_key`."""
    if isinstance(key, str):
        return key
    pad, value = key & 3, key >> 2
    size = (value.bit_length() - 1) // 8
    raw = (value ^ (1 << 8 * size)).to_bytes(size, "big")
    return base64.urlsafe_b64encode(raw).decode("ascii")[: 4 * size // 3 - pad]


class Proxies:
    """Sessions held elsewhere: token -> (route of the primary, the route's stamp).

    A mapping of tokens as far as ``in``, ``len`` and iteration go; entries are
    read with :meth:`get` and :meth:`items`, written with :meth:`put`.
    """

    __slots__ = ("_entries", "_index", "_limit", "_routes")

    def __init__(self) -> None:
        self._entries: dict[int | str, int] = {}  # token_key(token) -> packed
        self._routes: list[str | None] = [None]  # index -> route; 0 is "no route"
        self._index: dict[str | None, int] = {None: 0}  # route -> index
        self._limit = _ROUTES_COMPACTED_AT  # routes in the table before a compaction

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and token_key(token) in self._entries

    def __iter__(self) -> Iterator[str]:
        return map(key_token, list(self._entries))

    def get(self, token: str) -> tuple[str | None, int] | None:
        """``(route, stamp)`` of ``token``, or ``None`` if it has no entry."""
        packed = self._entries.get(token_key(token))
        if packed is None:
            return None
        return self._routes[packed >> STAMP_BITS], packed & _STAMP_MASK

    def route(self, token: str) -> str | None:
        """The route of ``token``'s primary (``None``: no entry, or no route)."""
        packed = self._entries.get(token_key(token))
        return None if packed is None else self._routes[packed >> STAMP_BITS]

    def put(self, token: str, route: str | None, stamp: int) -> None:
        """Record that ``token`` lives on the node of ``route`` (as of ``stamp``)."""
        if not 0 <= stamp <= _STAMP_MASK:
            raise ValueError(f"a stamp has at most {STAMP_BITS} bits")
        index = self._index.get(route)
        if index is None:
            if len(self._routes) >= self._limit:
                self._compact()
            index = len(self._routes)
            self._routes.append(route)
            self._index[route] = index
        self._entries[token_key(token)] = (index << STAMP_BITS) | stamp

    def pop(self, token: str) -> None:
        """Forget ``token``'s entry, if any."""
        self._entries.pop(token_key(token), None)

    def items(self) -> list[tuple[str, str | None, int]]:
        """``(token, route, stamp)`` of every entry, as of now."""
        routes = self._routes
        return [
            (key_token(key), routes[packed >> STAMP_BITS], packed & _STAMP_MASK)
            for key, packed in self._entries.items()
        ]

    def _compact(self) -> None:
        """Drop the routes no entry refers to (nodes gone, with new routes since)."""
        used = {packed >> STAMP_BITS for packed in self._entries.values()}
        kept = [self._routes[0], *(self._routes[i] for i in sorted(used) if i)]
        renumber = {old: new for new, old in enumerate([0, *sorted(used - {0})])}
        self._entries = {
            key: (renumber[packed >> STAMP_BITS] << STAMP_BITS) | (packed & _STAMP_MASK)
            for key, packed in self._entries.items()
        }
        self._routes = kept
        self._index = {route: index for index, route in enumerate(kept)}
        # Twice what is in use: a table of many live routes is not compacted every put.
        self._limit = max(_ROUTES_COMPACTED_AT, 2 * len(kept))
