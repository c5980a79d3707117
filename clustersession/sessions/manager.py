"""Session managers: where a node's sessions live and how changes are applied.

:class:`LocalManager` is the one-node manager (Tomcat's StandardManager without
persistence). The replicating manager of a distributable app builds on it: a
request's :class:`~.record.SessionDelta` goes through :meth:`LocalManager.commit`,
and changes from peers through :meth:`LocalManager.apply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from . import codec
from .listeners import AttributeEvent, DestroyReason, SessionEvent, SessionListener
from .record import SessionDelta, SessionRecord
from .store import SessionStore

logger = logging.getLogger("clustersession")


class LocalManager:
    """Holds one node's sessions: lookup, commit of request changes, expiry sweep.

    ``sweep_interval`` is the period, in seconds, of the background task that removes
    expired sessions; it runs between :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        sweep_interval: float = 60.0,
        listeners: Sequence[SessionListener] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = SessionStore()
        self.sweep_interval = sweep_interval
        self.listeners = tuple(listeners)
        self.clock = clock
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start background work (the expiry sweep) on the running loop."""
        self.ensure_started()

    def ensure_started(self) -> None:
        """Start the sweep if it is not running on the current loop.

        Called on every request, so an app served without ASGI lifespan still
        gets its sweep; cheap when it is already running.
        """
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="clustersession-expiry-sweep"
            )

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

    def lookup(self, token: str) -> SessionRecord | None:
        """The live session for ``token``; an expired one is destroyed, not returned."""
        record = self.store.get(token)
        if record is None:
            return None
        if record.is_expired(self.clock()):
            self._destroy(record, "expired", remote=False)
            return None
        return record

    def sweep(self) -> int:
        """Destroy every expired session now; return how many."""
        expired = self.store.expired(self.clock())
        for record in expired:
            self._destroy(record, "expired", remote=False)
        if expired:
            logger.debug("expired %d sessions", len(expired))
        return len(expired)

    # -- writing ---------------------------------------------------------------

    async def commit(self, deltas: Sequence[SessionDelta]) -> None:
        """Apply the changes of one local request."""
        for delta in deltas:
            self.apply(delta, remote=False)

    def apply(self, delta: SessionDelta, *, remote: bool) -> None:
        """Apply one delta to the store and tell the listeners."""
        if delta.invalidated:
            record = self.store.get(delta.token)
            if record is not None:
                self._destroy(record, "invalidated", remote=remote)
            return
        record = self._renamed(delta, remote) if delta.renamed_from else None
        if record is None:
            record = self.store.get(delta.token)
        if record is None:
            if delta.is_access_only:
                return  # it expired or was invalidated meanwhile: nothing to keep alive
            record = SessionRecord(
                token=delta.token,
                route=delta.route,
                created_at=delta.created_at or delta.accessed_at,
                last_accessed_at=delta.accessed_at,
                max_inactive_interval=delta.max_inactive_interval or 0,
            )
            self.store.put(record)
            self._notify("session_created", SessionEvent(record.session_id, remote))
        record.route = delta.route
        record.last_accessed_at = max(record.last_accessed_at, delta.accessed_at)
        if delta.max_inactive_interval is not None:
            record.max_inactive_interval = delta.max_inactive_interval
        self._apply_attributes(record, delta, remote)

    def _renamed(self, delta: SessionDelta, remote: bool) -> SessionRecord | None:
        assert delta.renamed_from is not None
        record = self.store.pop(delta.renamed_from)
        if record is None:
            return None
        previous_id = record.session_id
        record.token = delta.token
        record.route = delta.route
        self.store.put(record)
        event = SessionEvent(record.session_id, remote, previous_id=previous_id)
        self._notify("session_id_changed", event)
        return record

    def _apply_attributes(self, record: SessionRecord, delta: SessionDelta, remote: bool) -> None:
        attributes = record.attributes
        if delta.set or delta.removed:
            record.packed = None
        notify = bool(self.listeners)
        for name, value in delta.set.items():
            old = attributes.get(name)
            attributes[name] = value
            if notify and old != value:
                kind = "attribute_added" if old is None else "attribute_replaced"
                self._notify(kind, self._attribute_event(record, name, value, old, remote))
        for name in delta.removed:
            old = attributes.pop(name, None)
            if notify and old is not None:
                event = self._attribute_event(record, name, None, old, remote)
                self._notify("attribute_removed", event)

    def _destroy(self, record: SessionRecord, reason: DestroyReason, *, remote: bool) -> None:
        self.store.pop(record.token)
        self._notify("session_destroyed", SessionEvent(record.session_id, remote, reason))

    # -- listeners -------------------------------------------------------------

    @staticmethod
    def _attribute_event(
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
