"""The session one request sees: a ``dict`` that knows what the request changed."""

from __future__ import annotations

import logging
from _collections_abc import dict_items, dict_keys, dict_values
from collections.abc import Callable, Iterator
from typing import Any

from starlette.middleware.sessions import Session as StarletteSession

from . import codec
from .ids import SessionIds, join_id, loggable_id, session_fields
from .record import UNDECODED, SessionDelta, SessionRecord

logger = logging.getLogger("clustersession")

_MISSING: Any = object()


# Values are decoded when first touched: a request that reads three keys of a
# 200-key session decodes three values, not 200.
_UNDECODED: Any = UNDECODED
# Values of these types cannot change in place: if the request still holds the very
# object it loaded (or set), it need not be encoded again to know it is unchanged.
# Access times are kept to this many seconds: a request that does not read the
# session within that long of the last access commits nothing at all.
ACCESS_RESOLUTION = 1.0
_IMMUTABLE = frozenset({str, int, float, bool, bytes, type(None)})


# Key sets seen (sessions of one app mostly share a few): key -> _UNDECODED, never changed.
_PLACEHOLDERS: dict[tuple[str, ...], dict[str, Any]] = {}


def _placeholders(
    record: SessionRecord, stored: dict[str, bytes]
) -> tuple[dict[str, bytes], dict[str, Any], bool]:
    """What a request's session starts from: ``record.undecoded``, made or brought up to date.

    Its dict maps every key of ``stored`` (the record's attributes) to ``_UNDECODED``
    or, once the record has its own dict (``owned``), to the value a request decoded
    if of an immutable type (see :meth:`Session._value`): the next requests share it
    rather than decode the same bytes again. A record read once shares one dict with
    the records of the same keys (what many sessions read once would cost in memory);
    read again, or written after a read, it gets its own. Kept on the record for as
    long as its attributes dict is the same object (it is replaced, never changed in
    place; change.merge carries the dict over), so a request copies one prepared dict
    (C, ``dict.update``) rather than build it.
    """
    cached = record.undecoded
    if cached is not None and cached[0] is stored:
        if not cached[2]:  # read before: from now on the record keeps what is decoded
            cached = record.undecoded = (stored, cached[1].copy(), True)
        return cached
    keys = tuple(stored)
    placeholders = _PLACEHOLDERS.get(keys)
    if placeholders is None:
        if len(_PLACEHOLDERS) >= 1024:  # bound the odd key sets
            _PLACEHOLDERS.clear()
        placeholders = _PLACEHOLDERS[keys] = dict.fromkeys(keys, _UNDECODED)
    cached = record.undecoded = (stored, placeholders, False)
    return cached


def _encode(key: object, value: object) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"session keys must be str, got {type(key).__name__} {key!r}")
    try:
        return codec.encode(value)
    except TypeError as exc:
        raise TypeError(f"session[{key!r}]: {exc}; see clustersession.sessions.codec") from exc


class Session(StarletteSession):
    """``request.session``: Starlette's ``Session`` stored on the server.

    Besides the ``dict`` and Starlette's ``accessed``/``modified`` flags it offers
    what Tomcat's ``HttpSession`` offers: :attr:`id`, :attr:`is_new`,
    :attr:`created_at`, :attr:`last_accessed_at`, :attr:`max_inactive_interval`,
    :meth:`regenerate_id` and :meth:`invalidate`.

    Values must be serialisable (:mod:`clustersession.sessions.codec`); setting one
    that is not raises ``TypeError`` at once. Values the request reads are compared,
    encoded, with what was stored when the request ends, so in-place changes such as
    ``session["cart"].append(item)`` are saved without reassigning the key.

    Stored values are decoded when the request first touches them (a key, or the
    whole session through ``items()``, ``values()``, ``copy()``, iteration, ``==``,
    ``repr``, ``|`` or ``json.dumps``): every Python-level way of reading the dict
    sees decoded values. C code that reads a dict's storage directly (orjson, or
    ``dict.get(session, key)``) may meet a placeholder: give it ``session.copy()``,
    or use :meth:`peek` for one key.
    """

    # Slots, not the instance __dict__ Starlette's Session would give: a dict subclass's
    # __dict__ attributes take the interpreter's slow, unspecialised path, and one
    # Session is built and read a few dozen times per request.
    __slots__ = (
        "_created_at",
        "_ids",
        "_interval_changed",
        "_invalidated",
        "_last_accessed_at",
        "_loaded",
        "_max_inactive_interval",
        "_may_create",
        "_maybe_removed",
        "_now",
        "_prepared",
        "_read",
        "_read_all",
        "_record",
        "_renamed_from",
        "_route",
        "_stored",
        "_token",
        "_undecoded",
        "_written",
        "accessed",
        "cookie_stale",
        "modified",
        "retired",
    )

    cookie_stale: bool
    """Set by the middleware when the client's cookie names an outdated route."""
    retired: bool
    """Set by the middleware when the cookie names an id that invalidate() or
    regenerate_id() retired: the request sees an empty session, and what it writes is
    dropped, so it can neither reach the renamed session (the point of regenerating
    an id) nor start a second session beside it."""

    def __init__(
        self,
        ids: SessionIds,
        record: SessionRecord | None,
        default_max_inactive_interval: int,
        now: float,
        may_create: Callable[[], bool] | None = None,
    ) -> None:
        self._ids = ids
        self._now = now
        # Starlette's flags and the per-request ones (slots have no class defaults).
        self.accessed = self.modified = False
        self.cookie_stale = self.retired = False
        self._read_all = self._maybe_removed = self._interval_changed = False
        self._undecoded = False  # whether some value may still be _UNDECODED
        self._renamed_from: str | None = None  # regenerate_id(): the old token
        # The records invalidate() ended during this request (a tuple until the first).
        self._invalidated: tuple[SessionRecord, ...] = ()
        # Asked before the first value of a new session is stored (max_active_sessions).
        self._may_create = may_create
        # A dict, not a set: changes are replayed (and listeners called) in access order.
        self._read: dict[str, None] = {}
        self._written: dict[str, tuple[Any, bytes]] = {}
        # The decoded values, as first decoded (their identity tells an unchanged one).
        self._loaded: dict[str, Any] = {}
        if record is None:
            self._start_new(default_max_inactive_interval)
        else:
            stored = record.attributes
            # Not a copy: a concurrent request's commit replaces the record's dict
            # rather than change this one (see SessionRecord.attributes).
            self._stored: dict[str, bytes] = stored
            # The record's own prepared dict (see _placeholders): takes decoded immutable values.
            self._prepared: dict[str, Any] | None = None
            if record.local:  # attributes session_attribute_name_filter keeps here
                self._stored = {**stored, **record.local}
                dict.update(self, dict.fromkeys(self._stored, _UNDECODED))
                self._undecoded = True
            elif stored:
                # Every key, each value decoded on first touch (_value, _decode_all),
                # or decoded already by an earlier request when it cannot change.
                _, prepared, owned = _placeholders(record, stored)
                dict.update(self, prepared)
                if owned:
                    self._prepared = prepared
                self._undecoded = True
            self._record: SessionRecord | None = record
            self._token: str | None = record.token
            self._route = record.route
            self._created_at = record.created_at
            self._last_accessed_at = record.last_accessed_at
            self._max_inactive_interval = record.max_inactive_interval

    def _start_new(self, max_inactive_interval: int) -> None:
        self._record = None
        self._token = None  # drawn when first needed: most requests never need one
        self._route = self._ids.route
        self._stored = {}
        self._prepared = None
        self._created_at = self._now
        self._last_accessed_at = self._now
        self._max_inactive_interval = max_inactive_interval

    # -- HttpSession-style API -------------------------------------------------

    @property
    def id(self) -> str:
        """The session id, ``token.jvm_route``, as the cookie carries it."""
        if self._token is None:
            self._token = self._ids.new_token()
        return join_id(self._token, self._route)

    @property
    def is_new(self) -> bool:
        """True until the client has come back with this session's cookie."""
        return self._record is None

    @property
    def created_at(self) -> float:
        """Creation time, seconds since the epoch."""
        return self._created_at

    @property
    def last_accessed_at(self) -> float:
        """Time of the previous request of this session (this one's, if new)."""
        return self._last_accessed_at

    @property
    def max_inactive_interval(self) -> int:
        """Seconds of inactivity after which the session expires; ``<= 0``: never."""
        return self._max_inactive_interval

    @max_inactive_interval.setter
    def max_inactive_interval(self, seconds: int) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise TypeError(f"max_inactive_interval must be an int, got {seconds!r}")
        self._max_inactive_interval = seconds
        self._interval_changed = True
        self.mark_modified()

    def regenerate_id(self) -> None:
        """Give the session a new id, keeping its data (defence against fixation).

        The old id stops working when this request's changes are committed; the
        response carries the new cookie.
        """
        if self._record is not None and self._renamed_from is None:
            self._renamed_from = self._record.token
        self._token = self._ids.new_token()
        self.mark_modified()

    def invalidate(self) -> None:
        """Destroy the session: its data is gone and the response clears the cookie.

        Writing to the session afterwards starts a new session with a new id.
        """
        if self._record is not None:
            self._invalidated = (*self._invalidated, self._record)
        dict.clear(self)
        self._undecoded = False
        self._read.clear()
        self._read_all = False
        self._maybe_removed = False
        self._renamed_from = None
        self._interval_changed = False
        self._loaded, self._written = {}, {}
        self._start_new(self._max_inactive_interval)
        self.mark_modified()

    @property
    def was_invalidated(self) -> bool:
        """Whether :meth:`invalidate` was called during this request."""
        return bool(self._invalidated)

    @property
    def existed(self) -> bool:
        """Whether the request arrived with a live session (now or before invalidation)."""
        return self._record is not None or bool(self._invalidated)

    # -- change tracking -------------------------------------------------------

    def _value(self, key: str) -> Any:
        """Decode the stored value of ``key`` into the dict (``_MISSING`` if it does not).

        Values are checked when set, so only bytes a peer with another codec (or a
        bug) replicated fail here: that key is left out, with an error logged, and
        the rest of the session stays usable.
        """
        try:
            value = codec.decode(self._stored[key])
        except codec.CodecError as exc:
            logger.error("session %s: attribute %r does not decode, left out: %s",
                         loggable_id(self._token), key, exc,
                         extra=session_fields(self._token))  # fmt: skip
            dict.__delitem__(self, key)
            return _MISSING
        dict.__setitem__(self, key, value)
        self._loaded[key] = value
        if type(value) in _IMMUTABLE and self._prepared is not None:
            self._prepared[key] = value  # the next requests of this record share it
        return value

    def _decode_all(self) -> None:
        """Decode every value not decoded yet (before the dict is read as a whole)."""
        if self._undecoded:
            self._undecoded = False
            for key, value in list(dict.items(self)):
                if value is _UNDECODED:
                    self._value(key)

    def peek(self, key: str, default: Any = None) -> Any:
        """``get()`` that does not count as a read by the request (for adapters)."""
        value = dict.get(self, key, _MISSING)
        if value is _UNDECODED:
            value = self._value(key)
        return default if value is _MISSING else value

    def __getitem__(self, key: str) -> Any:
        self._read[key] = None
        value = dict.__getitem__(self, key)
        if value is _UNDECODED:
            try:
                # _value(), written out for the common case: the first read of a key.
                value = codec.decode(self._stored[key])
            except codec.CodecError:
                value = self._value(key)  # logs it and leaves the key out
                if value is _MISSING:
                    raise KeyError(key) from None
                return value
            dict.__setitem__(self, key, value)
            self._loaded[key] = value
            if type(value) in _IMMUTABLE and self._prepared is not None:
                self._prepared[key] = value  # the next requests of this record share it
        return value

    def get(self, key: str, default: Any = None) -> Any:
        self._read[key] = None
        value = dict.get(self, key, _MISSING)
        if value is _UNDECODED:
            value = self._value(key)
        return default if value is _MISSING else value

    def items(self) -> dict_items[str, Any]:
        self._read_all = True
        self._decode_all()
        return super().items()

    def values(self) -> dict_values[str, Any]:
        self._read_all = True
        self._decode_all()
        return super().values()

    def copy(self) -> dict[str, Any]:
        self._read_all = True
        self._decode_all()
        return dict(super().items())

    def __iter__(self) -> Iterator[str]:
        # Also makes dict(session) and {**session} go through keys() and __getitem__
        # rather than copy the dict's storage in C. Iterating decodes every value,
        # so a key whose value does not decode is never listed.
        self._decode_all()
        return super().__iter__()

    def keys(self) -> dict_keys[str, Any]:
        self._decode_all()
        return super().keys()

    def __eq__(self, other: object) -> bool:
        self._decode_all()
        if isinstance(other, Session):
            other._decode_all()
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        self._decode_all()
        if isinstance(other, Session):
            other._decode_all()
        return super().__ne__(other)

    __hash__ = None  # type: ignore[assignment]  # as dict's

    def __repr__(self) -> str:
        self._decode_all()
        return super().__repr__()

    def __or__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        self._read_all = True
        self._decode_all()
        return super().__or__(other)

    def __ror__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        self._read_all = True
        self._decode_all()
        return super().__ror__(other)

    def _creating(self) -> None:
        may_create = self._may_create
        if may_create is not None and self._record is None and not self and not may_create():
            raise TooManyActiveSessions(
                "too many active sessions (manager.max_active_sessions): "
                "this request cannot start a session"
            )

    def __setitem__(self, key: str, value: Any) -> None:
        if self._may_create is not None:
            self._creating()
        # Refuse what cannot be stored before it is stored; keep the bytes for commit.
        self._written[key] = (value, _encode(key, value))
        self._read[key] = None
        self.mark_modified()
        dict.__setitem__(self, key, value)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._read[key] = None
        if dict.get(self, key, _MISSING) is _UNDECODED:
            self._value(key)
        if key not in self:
            self._creating()
            _encode(key, default)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value
        self.mark_modified()

    def __ior__(self, other: Any, /) -> Session:  # type: ignore[override]
        self.update(other)
        return self

    def __delitem__(self, key: str) -> None:
        self._maybe_removed = True
        super().__delitem__(key)

    def pop(self, key: str, *args: Any) -> Any:
        self._maybe_removed = True
        if dict.get(self, key, _MISSING) is _UNDECODED:
            self._value(key)
        return super().pop(key, *args)

    def popitem(self) -> tuple[str, Any]:
        self._maybe_removed = True
        self._decode_all()
        return super().popitem()

    def clear(self) -> None:
        self._maybe_removed = True
        super().clear()

    # -- end of request --------------------------------------------------------

    def changes(self, now: float) -> list[SessionDelta]:
        """What this request did, as deltas for the manager (possibly none).

        Encodes only the values the request read or wrote, and compares them with
        what was stored: O(touched keys), not O(session). An in-place change that
        made a value unserialisable is logged by the caller and that key keeps its
        stored value.
        """
        deltas = (
            [SessionDelta(r.token, r.route, now, invalidated=True) for r in self._invalidated]
            if self._invalidated
            else []
        )
        record = self._record
        if not self:
            if record is not None:
                # Emptied: as with Starlette, an empty session is no session.
                deltas.append(
                    SessionDelta(
                        token=record.token, route=record.route, accessed_at=now, invalidated=True
                    )
                )
            return deltas
        # The values the request read or wrote, encoded only when they may have changed,
        # compared with what was stored (written out here: it runs on every request).
        keys = self.keys() if self._read_all else self._read
        set_values: dict[str, bytes] = {}
        errors: list[str] = []
        stored, loaded, written = self._stored, self._loaded, self._written
        prepared = self._prepared if self._prepared is not None else loaded
        get = dict.get
        pack = None
        for key in keys:
            value = get(self, key, _MISSING)
            if value is _MISSING or value is _UNDECODED:
                continue
            if type(value) in _IMMUTABLE:
                known = written.get(key)
                if known is None:
                    if value is loaded.get(key, _MISSING) or value is prepared.get(key, _MISSING):
                        continue  # the very object it loaded, which cannot have changed
                elif known[0] is value:
                    if stored.get(key) != known[1]:
                        set_values[key] = known[1]  # encoded when set
                    continue
            if pack is None:
                pack = codec.packer().pack
            try:
                # Keys in the dict are str already (checked when set): encode directly.
                encoded = pack(value)
            except Exception:
                pack = None  # codec.encode() replaces a packer that failed: use its next one
                try:
                    encoded = _encode(key, value)  # the same failure, with the key in its message
                except TypeError as exc:
                    errors.append(str(exc))
                    continue
            if stored.get(key) != encoded:
                set_values[key] = encoded
        removed: tuple[str, ...] = ()
        if self._maybe_removed:
            removed = tuple(key for key in self._stored if key not in self)
        if (
            record is not None
            and not set_values
            and not removed
            and not self.modified
            and not errors  # else the failure would go unreported
            and now - record.last_accessed_at < ACCESS_RESOLUTION
        ):
            return deltas  # nothing changed, and its access time is fresh enough
        if self._token is None:
            self._token = self._ids.new_token()
        deltas.append(
            SessionDelta(
                self._token,
                self._route,
                now,
                self._created_at if record is None else None,
                set_values,
                removed,
                (self._max_inactive_interval if record is None or self._interval_changed else None),
                False,
                self._renamed_from,
            )
        )
        if errors:
            raise UnserialisableChange(deltas, errors)
        return deltas


class TooManyActiveSessions(RuntimeError):
    """The node holds ``manager.max_active_sessions`` sessions: no new one starts.

    Raised by the write that would start a session, as Tomcat's ``getSession(true)``
    raises; sessions that exist (here or replicated) are served as usual.
    """


class UnserialisableChange(TypeError):
    """A value was changed in place into something that cannot be stored.

    ``deltas`` holds every other change of the request, which is still committed.
    """

    def __init__(self, deltas: list[SessionDelta], errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.deltas = deltas
