"""Session managers: where a node's sessions live and how changes are applied.

:class:`LocalManager` is the one-node manager (Tomcat's StandardManager without
persistence). Every write goes the way a replicated one does: a request's
:class:`~.record.SessionDelta` is stamped into a :class:`~.change.Change` and
merged into the store, so the replicating manager
(:class:`~.delta_manager.DeltaManager`) only adds sending and receiving.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence

from ..channel.ratelimit import RateLimitedLog
from . import codec
from .change import Change, Effect, full_digest, merge, new_record, snapshot
from .clock import HybridClock, stamp_time
from .ids import loggable_id, session_fields
from .listeners import AttributeEvent, DestroyReason, SessionEvent, SessionListener
from .record import SessionDelta, SessionRecord
from .store import SessionStore

logger = logging.getLogger("clustersession")

# An invalidated session's id stays dead this long (bounded by a day), so that
# no late or replayed change brings it back.
MIN_TOMBSTONE_SECONDS = 3600
MAX_TOMBSTONE_SECONDS = 86400


class StampedStore:
    """Holds one node's sessions: lookup, commit of request changes, merge, expiry sweep.

    ``sweep_interval`` is the period, in seconds, of the background task that
    removes expired sessions; it runs between :meth:`start` and :meth:`stop`.
    ``default_interval`` is the idle timeout of sessions created by a change
    that does not name one. ``max_active_sessions`` (``-1``: no limit) caps the
    sessions a request may start here; replicated copies count, as in Tomcat.
    ``replicated_names`` (Tomcat's ``sessionAttributeNameFilter``, a regex) is the
    attribute names that leave this node; others stay local (``None``: all leave).
    ``lifetime`` (seconds, ``<= 0``: none) is the absolute lifetime: a session
    created longer ago is expired however active (every node knows the creation
    time, which travels with the session, so every node decides alike).
    """

    def __init__(
        self,
        *,
        sweep_interval: float = 60.0,
        listeners: Sequence[SessionListener] = (),
        clock: Callable[[], float] = time.time,
        default_interval: int = 1800,
        node: int | None = None,
        max_active_sessions: int = -1,
        replicated_names: str | None = None,
        lifetime: int = 0,
    ) -> None:
        self.store = SessionStore()
        self.lifetime = lifetime
        self.sweep_interval = sweep_interval
        self.listeners = tuple(listeners)
        self.clock = clock
        self.default_interval = default_interval
        self.hlc = HybridClock(secrets.randbits(32) if node is None else node, lambda: self.clock())
        # token -> (stamp of the invalidation, wall time after which it is forgotten)
        self.tombstones: dict[str, tuple[int, float]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.max_active_sessions = max_active_sessions
        self.rejected_sessions = 0  # Tomcat's rejectedSessions
        self.sessions_created = 0  # by this node's requests (Tomcat's sessionCounter)
        self.sessions_expired = 0  # Tomcat's expiredSessions
        # A flood of new-session requests must not become a flood of log lines.
        self._refusals = RateLimitedLog(logger)
        self._replicated = re.compile(replicated_names) if replicated_names else None
        self._is_replicated: dict[str, bool] = {}  # the filter's verdict per name

    # -- lifecycle -------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether background work is running (checked on every request)."""
        return self._sweeper is not None and not self._sweeper.done()

    async def start(self) -> None:
        """Start background work (the expiry sweep) on the running loop.

        The middleware calls it in ASGI lifespan, or on the first request of an
        app served without lifespan (and again if that loop went away).
        """
        if not self.started:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="clustersession-expiry-sweep"
            )

    @property
    def ready(self) -> bool:
        """Whether it serves (one node: once started)."""
        sweeper = self._sweeper  # started, written out: asked on every request
        return sweeper is not None and not sweeper.done()

    async def join(self) -> None:
        """Start (one node: there is nothing to wait for)."""
        await self.start()

    async def stop(self) -> None:
        """Stop background work. Sessions stay in memory."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                self.sweep()
            except Exception:  # a bug in a listener must not end the sweep
                logger.exception("expiry sweep failed")

    # -- reading ---------------------------------------------------------------

    fetches = False
    """Every session this node serves is here: :meth:`fetch` has nothing to do."""

    async def fetch(self, token: str, route: str | None = None) -> None:
        """Nothing to fetch: sessions are held here (see the backup manager)."""

    def lookup(self, token: str) -> SessionRecord | None:
        """The live session for ``token``; an expired one is destroyed, not returned."""
        record = self.store.get(token)
        if record is None:
            return None
        if self.is_expired(record, self.clock()):
            self.expire(record)
            return None
        return record

    def records(self) -> Iterator[SessionRecord]:
        """The live sessions held here, from a copy of the table (expired ones left out)."""
        now = self.clock()
        return iter([r for r in list(self.store) if not self.is_expired(r, now)])

    def may_create(self) -> bool:
        """Whether a request may start a session now (counts a refusal).

        Sessions that requests are starting concurrently are not counted until
        they commit, so the limit can be passed by that many.
        """
        limit = self.max_active_sessions
        if limit < 0 or len(self.store) < limit:
            return True
        self.rejected_sessions += 1
        self._refusals.warning("max_active_sessions", "refused a new session: %d active, "
                               "max_active_sessions = %d", len(self.store), limit)  # fmt: skip
        return False

    def is_expired(self, record: SessionRecord, now: float) -> bool:
        """Whether this node considers ``record`` expired at ``now``."""
        # record.is_expired() and outlived(), written out: asked on every request.
        return 0 < record.max_inactive_interval <= now - record.last_accessed_at or (
            0 < self.lifetime <= now - record.created_at
        )

    def outlived(self, record: SessionRecord, now: float) -> bool:
        """Whether ``record`` is older than the absolute ``lifetime`` at ``now``."""
        return 0 < self.lifetime <= now - record.created_at

    def sweep(self) -> int:
        """Destroy every expired session now, forget old tombstones; return how many expired."""
        now = self.clock()
        expired = [r for r in self.store if self.is_expired(r, now)]
        for record in expired:
            self.expire(record)
        if expired:
            logger.debug("expired %d sessions", len(expired))
        stale = [t for t, (_, until) in self.tombstones.items() if until <= now]
        for token in stale:
            del self.tombstones[token]
            self.store.dead(token)
        return len(expired)

    def expire(self, record: SessionRecord) -> None:
        """Remove an expired session here (every node decides this for itself)."""
        self.store.pop(record.token)
        self.sessions_expired += 1
        self._notify("session_destroyed", SessionEvent(record.session_id, False, "expired"))

    # -- writing ---------------------------------------------------------------

    async def commit(
        self, deltas: Sequence[SessionDelta], *, replicate: bool = True
    ) -> list[Change]:
        """Apply the changes of one local request; return them as stamped changes.

        ``replicate`` is for replicating managers (the valve's ``filter``).
        """
        return self.commit_local(deltas)

    def commit_nowait(self, deltas: Sequence[SessionDelta], *, replicate: bool = True) -> None:
        """Apply a request's changes now, waiting for nothing (nothing to wait for here)."""
        self.commit_local(deltas)

    @property
    def waits_for_peers(self) -> bool:
        """Whether a commit waits for other nodes (never, on one node)."""
        return False

    def commit_local(self, deltas: Sequence[SessionDelta]) -> list[Change]:
        """Stamp and merge a request's changes into this node's store; return them."""
        changes: list[Change] = []
        for delta in deltas:
            local: SessionDelta | None = None
            if self._replicated is not None and (delta.set or delta.removed):
                delta, local = self._split(delta)
            change = self.stamp(delta)
            self.apply(change, remote=False)
            if local is not None:
                self._apply_local(local)
            if change.renamed_from is not None:
                # Peers get the whole session under its new id: self-contained, so a
                # rename can never meet a peer that lacks the old session's history.
                record = self.store.get(change.token)
                if record is not None:
                    full = snapshot(record)
                    full.renamed_from = change.renamed_from
                    change = full
            changes.append(change)
        return changes

    def _split(self, delta: SessionDelta) -> tuple[SessionDelta, SessionDelta | None]:
        """The part of a request's delta that replicates, and the part that stays here."""
        verdicts, pattern = self._is_replicated, self._replicated
        assert pattern is not None
        for name in (*delta.set, *delta.removed):
            if name not in verdicts:
                if len(verdicts) >= 4096:  # names repeat across sessions; bound the odd ones
                    verdicts.clear()
                verdicts[name] = pattern.fullmatch(name) is not None
        if all(verdicts[n] for n in delta.set) and all(verdicts[n] for n in delta.removed):
            return delta, None
        shared = dataclasses.replace(
            delta,
            set={k: v for k, v in delta.set.items() if verdicts[k]},
            removed=tuple(k for k in delta.removed if verdicts[k]),
        )
        local = SessionDelta(
            delta.token,
            delta.route,
            delta.accessed_at,
            set={k: v for k, v in delta.set.items() if not verdicts[k]},
            removed=tuple(k for k in delta.removed if not verdicts[k]),
        )
        return shared, local

    def _apply_local(self, delta: SessionDelta) -> None:
        """Store the attributes the filter keeps on this node (last write wins here)."""
        record = self.store.get(delta.token)
        if record is None:
            return
        local = record.local if record.local is not None else {}
        effect: Effect = []
        for name, value in delta.set.items():
            old = local.get(name)
            local[name] = value
            if old is None:
                effect.append(("attribute_added", name, value, None))
            elif old != value:
                effect.append(("attribute_replaced", name, value, old))
        for name in delta.removed:
            gone = local.pop(name, None)
            if gone is not None:
                effect.append(("attribute_removed", name, None, gone))
        record.local = local or None
        for kind, name, new, old_value in effect:
            self._notify(kind, self._event(record, name, new, old_value, False))

    def stamp(self, delta: SessionDelta) -> Change:
        """Turn a request's delta into a stamped change."""
        if delta.invalidated:
            return Change(delta.token, delta.accessed_at, invalidated=self.hlc.stamp())
        change = Change(delta.token, delta.accessed_at, delta.created_at)
        if delta.renamed_from is not None:
            change.renamed_from = delta.renamed_from
        if delta.is_access_only:
            return change
        # One stamp for the whole write: its fields are distinct, so they need no order
        # among themselves, and the sessions share one int instead of one per field.
        stamp = self.hlc.stamp()
        if delta.created_at is not None:
            change.route, change.route_stamp = delta.route, stamp
        if delta.max_inactive_interval is not None:
            change.interval, change.interval_stamp = delta.max_inactive_interval, stamp
        if delta.set:
            change.values = delta.set  # the request's own dict: nobody changes it later
            change.value_stamps = dict.fromkeys(delta.set, stamp)
        if delta.removed:
            change.removed = dict.fromkeys(delta.removed, stamp)
        return change

    def apply(self, change: Change, *, remote: bool) -> None:
        """Merge one change into the store and tell the listeners."""
        if change.token in self.tombstones:
            return  # invalidated: nothing brings it back
        if change.invalidated:
            self._tombstone(change.token, change.invalidated)
            record = self.store.get(change.token)
            if record is not None:
                self._destroy(record, "invalidated", remote=remote)
            return
        record = self.store.get(change.token)
        previous_id: str | None = None
        if change.renamed_from is not None:
            old = self.store.pop(change.renamed_from)
            # The rename's own stamp: every node then forgets the old id at the same time.
            self._tombstone(change.renamed_from, change.highest_stamp() or self.hlc.stamp())
            if old is not None and record is None:
                previous_id = old.session_id
                old.token = change.token
                old.digest = full_digest(old)
                record = old
                self.store.put(record)
        created = False
        if record is None:
            if change.is_access_only:
                return  # expired or unknown here: nothing to keep alive
            record = new_record(change, self.default_interval)
            created = True
        before = record.digest
        effect = merge(record, change, effects=bool(self.listeners))
        if created:
            if change.full and self.is_expired(record, self.clock()):
                return  # a copy of a session that has expired here meanwhile
            self.store.put(record)
            if not remote:
                self.sessions_created += 1
        else:
            self.store.digest_changed(record, before)
        if not self.listeners:
            return
        if created:
            self._notify("session_created", SessionEvent(record.session_id, remote))
        if previous_id is not None:
            event = SessionEvent(record.session_id, remote, previous_id=previous_id)
            self._notify("session_id_changed", event)
        for kind, name, value, old_value in effect:
            self._notify(kind, self._event(record, name, value, old_value, remote))

    def merge_remote(self, changes: list[Change], dead: list[tuple[str, int]]) -> int:
        """Merge what a peer sent (dead ids first); return how many changes failed.

        One change that cannot be applied does not stop the others.
        """
        failed = 0
        for token, stamp in dead:
            self.hlc.observe(stamp)
            self.apply(Change(token, 0.0, invalidated=stamp), remote=True)
        for change in changes:
            self.hlc.observe(change.highest_stamp())
            try:
                self.apply(change, remote=True)
            except Exception:
                failed += 1
                logger.exception(
                    "could not apply a change to session %s",
                    loggable_id(change.token),
                    extra=session_fields(change.token),
                )
        return failed

    def _tombstone(self, token: str, stamp: int) -> None:
        if token in self.tombstones:
            return
        ttl = min(max(MIN_TOMBSTONE_SECONDS, 2 * self.default_interval), MAX_TOMBSTONE_SECONDS)
        # Counted from the invalidation's stamp, not from when this node heard of it,
        # so all nodes forget it together and anti-entropy never passes it back.
        forget_at = stamp_time(stamp) + ttl
        if forget_at <= self.clock():
            return
        self.tombstones[token] = (stamp, forget_at)
        self.store.dead(token)

    def _destroy(self, record: SessionRecord, reason: DestroyReason, *, remote: bool) -> None:
        self.store.pop(record.token)
        self._notify("session_destroyed", SessionEvent(record.session_id, remote, reason))

    # -- listeners -------------------------------------------------------------

    @staticmethod
    def _event(
        record: SessionRecord, name: str, value: bytes | None, old: bytes | None, remote: bool
    ) -> AttributeEvent:
        return AttributeEvent(
            session_id=record.session_id,
            name=name,
            value=None if value is None else codec.decode(value),
            old_value=None if old is None else codec.decode(old),
            remote=remote,
        )

    def _notify(self, method: str, event: SessionEvent | AttributeEvent) -> None:
        for listener in self.listeners:
            try:
                getattr(listener, method)(event)
            except Exception:
                logger.exception("session listener %r failed in %s", listener, method)
