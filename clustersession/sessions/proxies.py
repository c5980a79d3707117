"""The backup manager's proxy entries: where each session held elsewhere lives.

A backup node holds a proxy entry for most sessions of the cluster (at 8 nodes
and one backup, three in four), so an entry must cost little next to a copy
(~1.6 KB for a ~400 B session). A ``dict`` of Python objects costs ~150 B an
entry at best (a key object, a value object, the table); ours are base64url
tokens, so an entry is instead one fixed-width row of a ``bytearray`` hash table
(open addressing, linear probing): the token's bytes, the route stamp and the
index of the primary's route in a small table of routes. A 44-character token
makes a 48-byte row; at the table's load (3/8 to 3/4) that is 64-128 B an entry,
where a dict of tuples took ~310 (``python -m bench.memory``). Other tokens
(tests' short ones) go to a plain dict.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

STAMP_BYTES = 12  # the wire's stamps (see .wire.STAMP_BYTES)
STAMP_BITS = 8 * STAMP_BYTES
_STAMP_MASK = (1 << STAMP_BITS) - 1
_ROUTE_BYTES = 2  # route indexes past 65,535 go to the plain dict
_ROUTES_COMPACTED_AT = 1024  # routes in the table before unused ones are first dropped
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{16,}")
_EMPTY, _USED, _DELETED = 0, 1, 2  # a row's first byte
_MIN_ROWS = 8


def _raw(token: str) -> bytes | None:
    """A base64url token's bytes (padded with ``A``, zero bits, to a multiple of 4
    characters: the string and its bytes then map one to one); ``None`` for others."""
    if not _BASE64URL.fullmatch(token):
        return None
    return base64.urlsafe_b64decode(token + "A" * (-len(token) % 4))


class _Rows:
    """The entries of the tokens of one length: rows of ``state, token bytes, stamp,
    route index`` in one ``bytearray``, found by the hash of the token bytes."""

    __slots__ = ("buffer", "chars", "deleted", "row", "rows", "used", "width")

    def __init__(self, chars: int, width: int) -> None:
        self.chars = chars  # the tokens' length in characters
        self.width = width  # their length in bytes
        self.row = 1 + width + STAMP_BYTES + _ROUTE_BYTES
        self.rows = _MIN_ROWS
        self.buffer = bytearray(self.row * self.rows)
        self.used = 0
        self.deleted = 0

    def find(self, raw: bytes) -> tuple[int, int]:
        """``(offset of raw's row or -1, offset of the first free row on its path)``."""
        row, buffer, width, rows = self.row, self.buffer, self.width, self.rows
        index = hash(raw) % rows
        free = -1
        while True:
            at = index * row
            state = buffer[at]
            if state == _EMPTY:
                return -1, at if free < 0 else free
            if state == _DELETED:
                if free < 0:
                    free = at
            elif buffer[at + 1 : at + 1 + width] == raw:
                return at, at
            index += 1
            if index == rows:
                index = 0

    def value(self, at: int) -> tuple[int, int]:
        """``(stamp, route index)`` of the row at ``at``."""
        start = at + 1 + self.width
        stamp = int.from_bytes(self.buffer[start : start + STAMP_BYTES], "big")
        end = start + STAMP_BYTES
        return stamp, int.from_bytes(self.buffer[end : end + _ROUTE_BYTES], "big")

    def put(self, raw: bytes, stamp: int, route: int) -> None:
        found, free = self.find(raw)
        at = free if found < 0 else found
        if found < 0:
            if self.buffer[at] == _DELETED:
                self.deleted -= 1
            self.used += 1
        self.buffer[at : at + self.row] = (
            bytes((_USED,))
            + raw
            + stamp.to_bytes(STAMP_BYTES, "big")
            + route.to_bytes(_ROUTE_BYTES, "big")
        )
        if (self.used + self.deleted) * 4 > self.rows * 3:
            self._resize()

    def pop(self, raw: bytes) -> bool:
        at, _ = self.find(raw)
        if at < 0:
            return False
        self.buffer[at] = _DELETED
        self.used -= 1
        self.deleted += 1
        if self.rows > _MIN_ROWS and self.used * 8 < self.rows:
            self._resize()  # mostly gone: a smaller table
        return True

    def entries(self) -> Iterator[tuple[bytes, int, int]]:
        """``(token bytes, stamp, route index)`` of every row in use."""
        buffer, row, width = self.buffer, self.row, self.width
        for at in range(0, len(buffer), row):
            if buffer[at] == _USED:
                stamp, route = self.value(at)
                yield bytes(buffer[at + 1 : at + 1 + width]), stamp, route

    def token(self, raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode("ascii")[: self.chars]

    def renumber(self, routes: dict[int, int]) -> None:
        """Route index ``old`` becomes ``routes[old]`` in every row."""
        buffer, row = self.buffer, self.row
        for at in range(0, len(buffer), row):
            if buffer[at] == _USED:
                end = at + row
                old = int.from_bytes(buffer[end - _ROUTE_BYTES : end], "big")
                buffer[end - _ROUTE_BYTES : end] = routes[old].to_bytes(_ROUTE_BYTES, "big")

    def _resize(self) -> None:
        """Rebuild at a load of 3/8, without the deleted rows: it grows to 3/4, so each
        rebuild doubles it (their cost stays linear) and an entry takes 64-128 B."""
        rows = max(_MIN_ROWS, 8 * self.used // 3)
        old, row, width = self.buffer, self.row, self.width
        new = bytearray(row * rows)
        used = 0
        for at in range(0, len(old), row):
            if old[at] != _USED:
                continue
            raw = bytes(old[at + 1 : at + 1 + width])
            index = hash(raw) % rows  # the rows are all distinct: the first empty one
            while new[index * row]:
                index += 1
                if index == rows:
                    index = 0
            new[index * row : index * row + row] = old[at : at + row]
            used += 1
        self.rows, self.buffer, self.used, self.deleted = rows, new, used, 0


class Proxies:
    """Sessions held elsewhere: token -> (route of the primary, the route's stamp).

    A mapping of tokens as far as ``in``, ``len`` and iteration go; entries are
    read with :meth:`get` and :meth:`items`, written with :meth:`put`.
    """

    __slots__ = ("_index", "_limit", "_others", "_routes", "_rows")

    def __init__(self) -> None:
        self._rows: dict[int, _Rows] = {}  # token length -> its table
        self._others: dict[str, int] = {}  # token -> route index << STAMP_BITS | stamp
        self._routes: list[str | None] = [None]  # index -> route; 0 is "no route"
        self._index: dict[str | None, int] = {None: 0}  # route -> index
        self._limit = _ROUTES_COMPACTED_AT  # routes in the table before a compaction

    def __len__(self) -> int:
        return len(self._others) + sum(rows.used for rows in self._rows.values())

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self._find(token) is not None

    def __iter__(self) -> Iterator[str]:
        return iter([token for token, _, _ in self.items()])

    def _find(self, token: str) -> tuple[int, int] | None:
        """``(stamp, route index)`` of ``token``, or ``None``."""
        rows = self._rows.get(len(token))
        if rows is not None:
            raw = _raw(token)
            if raw is not None:
                at, _ = rows.find(raw)
                if at >= 0:
                    return rows.value(at)
        packed = self._others.get(token)
        return None if packed is None else (packed & _STAMP_MASK, packed >> STAMP_BITS)

    def get(self, token: str) -> tuple[str | None, int] | None:
        """``(route, stamp)`` of ``token``, or ``None`` if it has no entry."""
        found = self._find(token)
        return None if found is None else (self._routes[found[1]], found[0])

    def route(self, token: str) -> str | None:
        """The route of ``token``'s primary (``None``: no entry, or no route)."""
        found = self._find(token)
        return None if found is None else self._routes[found[1]]

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
        raw = _raw(token)
        if raw is not None and index < 1 << 8 * _ROUTE_BYTES:
            rows = self._rows.get(len(token))
            if rows is None:
                rows = self._rows[len(token)] = _Rows(len(token), len(raw))
            rows.put(raw, stamp, index)
            if self._others:
                self._others.pop(token, None)
            return
        self.pop(token)
        self._others[token] = (index << STAMP_BITS) | stamp

    def pop(self, token: str) -> None:
        """Forget ``token``'s entry, if any."""
        rows = self._rows.get(len(token))
        if rows is not None:
            raw = _raw(token)
            if raw is not None and rows.pop(raw):
                return
        self._others.pop(token, None)

    def items(self) -> list[tuple[str, str | None, int]]:
        """``(token, route, stamp)`` of every entry, as of now."""
        routes = self._routes
        found = [
            (rows.token(raw), routes[route], stamp)
            for rows in self._rows.values()
            for raw, stamp, route in rows.entries()
        ]
        found.extend(
            (token, routes[packed >> STAMP_BITS], packed & _STAMP_MASK)
            for token, packed in self._others.items()
        )
        return found

    def _compact(self) -> None:
        """Drop the routes no entry refers to (nodes gone, with new routes since)."""
        used = {packed >> STAMP_BITS for packed in self._others.values()}
        for rows in self._rows.values():
            used.update(route for _, _, route in rows.entries())
        renumber = {old: new for new, old in enumerate([0, *sorted(used - {0})])}
        self._others = {
            token: (renumber[packed >> STAMP_BITS] << STAMP_BITS) | (packed & _STAMP_MASK)
            for token, packed in self._others.items()
        }
        for rows in self._rows.values():
            rows.renumber(renumber)
        kept = [self._routes[old] for old in renumber]
        self._routes = kept
        self._index = {route: index for index, route in enumerate(kept)}
        # Twice what is in use: a table of many live routes is not compacted every put.
        self._limit = max(_ROUTES_COMPACTED_AT, 2 * len(kept))
