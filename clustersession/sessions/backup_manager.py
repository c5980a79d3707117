"""``BackupManager``: each session on a primary and ``backups`` copies (Tomcat's BackupManager).

The same stamped store and merge as :class:`~.delta_manager.DeltaManager`, but a
node keeps only the sessions it is an owner of (:mod:`.ownership`): the primary
(the node whose route the session carries) and the next ``manager.backups``
nodes of the rendezvous ranking. Every other node keeps a proxy entry, token ->
(route, stamp). The parts:

* writes go to the owners only (:meth:`.Replicator.queue_to`: DELTA numbered per
  receiver, with ``manager.map_send_options``); a gap makes the receiver ask the
  sender to resend (RESYNC, answered by RECORDS);
* creations, ownership moves, renames, invalidations and expiries reach every
  node as small OWNERS messages (route-only entries, dead and expired ids);
* a request for a session held elsewhere fetches it (:mod:`.fetch`: backups
  first, within ``rpc_timeout``), and this node becomes its primary;
* a membership change re-replicates at once: a primary sends its sessions to
  their new backups, the first backup of a lost primary takes over, and a copy
  a node no longer owns is handed to its owners before it is dropped;
* a joining node fetches the proxy entries (a chunked state transfer of routes
  only) and serves at once; its share of copies is pushed to it by the primaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from ..channel import (
    Channel,
    ChannelError,
    ChannelMessage,
    GroupChannel,
    Member,
    member_fields,
)
from ..channel import options as send_options
from ..channel.application import is_application_payload
from ..channel.tasks import BackgroundTasks, cancel_and_wait
from ..config import ClusterConfig
from .anti_entropy import INTERVAL
from .change import Change, snapshot
from .chunks import chunked, send_acknowledged
from .context import ReplicationContext
from .digest import BUCKETS, bucket_of
from .fetch import Fetcher
from .ids import loggable_id, session_fields
from .keepalive import KeepAlive
from .listeners import SessionListener
from .manager import (
    ClusterView,
    Opened,
    ReplicationCounters,
    ReplicationTimings,
    ReplicationView,
    SessionRoles,
)
from .ownership import Placement
from .proxies import Proxies
from .record import SessionDelta, SessionRecord
from .replicated_store import ReplicatedStore
from .replication import Replicator
from .state_transfer import RouteEntry, StateTransfer
from .wire import Kind, Message, WireError, decode, encode

logger = logging.getLogger("clustersession")

PACE = 1000  # records a pass over the store handles between two yields to the event loop
GIVE_BACK = -1  # a RESYNC count asking for the receiver's copies of our sessions
ANNOUNCE_TRIES = 4  # sends of an OWNERS message to a member that does not acknowledge it
SYNC_ACK = send_options.USE_ACK | send_options.SYNC_ACK


@dataclass(slots=True)
class MoveCounters:
    """Sessions that changed hands (the status page's and the tests' figures)."""

    fetched: int = 0
    """Copies fetched by a request on a node that held none."""
    taken_over: int = 0
    """Sessions this node became primary of (a request here, or a lost primary)."""
    pushed: int = 0
    """Copies sent to a new backup (re-replication, a join's share)."""
    handed_over: int = 0
    """Copies this node dropped after its owners acknowledged them."""
    lost: int = 0
    """Requests whose session had no copy left (they got a new session)."""


class BackupManager(ReplicatedStore):
    """A stamped store holding the sessions this node owns, with proxies for the rest.

    ``channel`` defaults to a :class:`GroupChannel` built from ``config``; any
    :class:`Channel` will do (tests use :mod:`clustersession.channel.testing`).
    """

    fetches = True

    def __init__(
        self,
        config: ClusterConfig,
        *,
        listeners: Sequence[SessionListener] = (),
        clock: Callable[[], float] = time.time,
        channel: Channel | None = None,
    ) -> None:
        self.config = config
        self.channel: Channel = channel if channel is not None else GroupChannel(config)
        super().__init__(
            sweep_interval=config.manager.expiry_sweep_interval,
            listeners=listeners,
            clock=clock,
            default_interval=config.manager.max_inactive_interval,
            node=int.from_bytes(self.channel.local.id[:4], "big"),
            max_active_sessions=config.manager.max_active_sessions,
            replicated_names=config.manager.session_attribute_name_filter,
            lifetime=config.manager.lifetime,
        )
        self.proxies = Proxies()
        """Sessions held elsewhere: token -> (route of the primary, its stamp)."""
        self.counters = ReplicationCounters()
        self.timings = ReplicationTimings()
        self.moves = MoveCounters()
        self.placement = Placement(self.channel, config.manager.backups)
        self._timers = BackgroundTasks(logger)
        self._tasks = BackgroundTasks(logger)
        context = ReplicationContext(self, self.channel, config, self.counters, self.timings)
        self.replication = Replicator(context, tasks=self._tasks, on_gap=self._resync_with)
        self.replication.options = config.manager.map_send_options
        self.state_transfer = StateTransfer(context, index=self._index)
        self.keepalive = KeepAlive(context, holders=self._other_owners)
        self.fetcher = Fetcher(context)
        self.channel.add_listener(self._received)
        self.channel.add_membership_listener(self)
        self._view: dict[bytes, Member] = {}  # the members the copies were last placed for
        self._rebalancing = asyncio.Lock()
        self._trim_pending = False
        self._check_tokens: set[str] = set()  # sessions a message touched, checked soon
        self._resending: set[bytes] = set()  # members a RESYNC answer is being sent to
        self._moving: dict[str, asyncio.Task[None]] = {}  # take-overs being announced
        self._started = False
        self._transfer: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has completed."""
        return self._started

    @property
    def ready(self) -> bool:
        """Whether it serves: joined, the routes of the sessions received, not stopping."""
        transfer = self._transfer
        return self._started and transfer is not None and transfer.done()

    async def start(self) -> None:
        """Join the cluster; return once it knows where the sessions live.

        The copies this node should hold arrive from their primaries meanwhile;
        requests are served before that ends (a missing copy is fetched).
        """
        await self.join()
        transfer = self._transfer
        if transfer is not None:
            await asyncio.shield(transfer)

    async def join(self) -> None:
        """Join the cluster and start background work; the routes' transfer runs on."""
        async with self._start_lock:
            if self._started:
                return
            await self.channel.start()
            await super().start()
            self._view = self.placement.members()
            self._timers.spawn(self.keepalive.run_forever(), "clustersession-touch")
            self._timers.spawn(self._check_forever(), "clustersession-backup-check")
            self._started = True
            self._transfer = asyncio.get_running_loop().create_task(
                self._receive_routes(), name="clustersession-state-transfer-in"
            )

    async def _receive_routes(self) -> None:
        await self.state_transfer.run()
        if self.state_transfer.transferred is False and (
            self.config.manager.terminate_on_start_failure
        ):
            raise RuntimeError(
                "no member sent where the sessions live, and "
                "manager.terminate_on_start_failure is true"
            )

    async def stop(self) -> None:
        """Leave the cluster: the backups hold every acknowledged write and take over."""
        if not self._started:
            return
        self._started = False
        transfer, self._transfer = self._transfer, None
        if transfer is not None:  # bounded: it may lose its cancel (wait_for on 3.11)
            await cancel_and_wait([transfer], logger=logger)
        await self.replication.flush()
        await self._tasks.wait(timeout=2.0)
        if self.config.manager.expire_sessions_on_shutdown:
            await self._expire_everywhere()
        await self.keepalive.flush()
        await self._timers.cancel_all()
        await self._tasks.cancel_all()
        await super().stop()
        await self.channel.stop()

    # -- the web floor's questions ------------------------------------------------------

    async def fetch(self, token: str, route: str | None = None) -> None:
        """Bring session ``token`` here if another node holds it, within ``rpc_timeout``.

        ``route`` (the cookie's) locates a session this node has no proxy entry for
        yet (it just joined). A copy held here as primary or backup needs no
        message; a copy this node no longer owns is refreshed from its owners first.
        """
        if token in self.tombstones:
            return
        held = self.store.get(token)
        known = None
        if held is not None:
            if held.route == self.channel.local.route or self.placement.is_owner(token, held.route):
                return  # the primary or a backup: every acknowledged write reached it
            # A copy this node no longer owns (it was the primary or a backup, and has
            # not handed it over yet) misses the writes made since: refresh it first.
            located: str | None = held.route
        else:
            known = self.proxies.get(token)
            if known is None and route is None:
                return  # never heard of it: an unknown or forged id
            located = known[0] if known is not None else route
        members = self.placement.members()
        owners = self.placement.owners(token, located, members)
        local = self.channel.local.id
        backups = [members[m] for m in owners.backups if m != local]
        first = [members[owners.primary]] if owners.primary not in (None, local) else []
        first_ids = {m.id for m in (*backups, *first)} | {local}
        rest = [m for i, m in members.items() if i not in first_ids]
        timeout = self.config.manager.rpc_timeout / 1000
        # The primary with the backups: a backup may miss an acknowledged write (its
        # DELTA failed, or our view of who backs it up differs), the primary does not.
        answer = await self.fetcher.fetch(token, [[*backups, *first], rest], timeout)
        if answer is None:
            if held is not None:
                logger.warning(
                    "session %s: its owners did not answer within %.1f s: "
                    "serving this node's copy, which may miss their latest writes",
                    loggable_id(token),
                    timeout,
                    extra=session_fields(token),
                )
            elif known is not None:
                self.moves.lost += 1
                logger.warning(
                    "session %s: no copy answered within %.1f s (every holder gone?): "
                    "the request gets a new session",
                    loggable_id(token),
                    timeout,
                    extra=session_fields(token),
                )
            return
        self.counters.bad_messages += self.merge_remote(answer.changes, answer.dead)
        if held is None and token in self.store:
            self.moves.fetched += 1

    def open(self, token: str) -> Opened:
        """The live session ``token`` names; a copy held here becomes this node's (primary)."""
        record = self.lookup(token)
        if record is None:
            return Opened(None, retired=token in self.tombstones)
        if record.route == self.channel.local.route:
            return Opened(record)
        self.take_over(record)
        return Opened(record, rerouted=True)

    def take_over(self, record: SessionRecord) -> None:
        """Make this node the session's primary; its backups get the whole session."""
        local = self.channel.local
        logger.info(
            "session %s: primary %s -> %s",
            loggable_id(record.token),
            record.route,
            local.route,
            extra=session_fields(record.token),
        )
        change = Change(record.token, self.clock(), route=local.route, route_stamp=self.hlc.stamp())
        self.apply(change, remote=False)
        self.moves.taken_over += 1
        full = snapshot(record)
        for member in self._other_owners(record.token):
            self.replication.queue_to(member, [full])
        told = self._announce([(record.token, record.route, record.route_stamp)], [], [])
        self._moving[record.token] = told
        told.add_done_callback(lambda _: self._moved(record.token, told))

    def _moved(self, token: str, told: asyncio.Task[None]) -> None:
        if self._moving.get(token) is told:
            del self._moving[token]

    def may_create(self) -> bool:
        """Whether a request may start a session: ``max_active_sessions`` counts primaries."""
        limit = self.max_active_sessions
        if limit < 0:
            return True
        primaries = self._primaries()
        if primaries < limit:
            return True
        self.rejected_sessions += 1
        logger.warning(
            "refused a new session: %d primary sessions, max_active_sessions = %d",
            primaries,
            limit,
        )
        return False

    async def commit(
        self, deltas: Sequence[SessionDelta], *, replicate: bool = True
    ) -> list[Change]:
        """Apply a request's changes here and send them to the session's other owners.

        With ``map_send_options`` 2 or 6 it returns once they acknowledged them.
        """
        changes, sent = self._commit_now(deltas, replicate)
        if not self.waits_for_peers:
            return changes
        if sent is not None:
            await asyncio.shield(sent)
        # A write after a take-over is acknowledged once every node knows of the move:
        # until then the former primary would serve its older copy as its own.
        moving = self._moving
        if moving:
            for change in changes:
                for token in (change.token, change.renamed_from):
                    told = moving.get(token) if token is not None else None
                    if told is not None:
                        await asyncio.shield(told)
        return changes

    def commit_nowait(self, deltas: Sequence[SessionDelta], *, replicate: bool = True) -> None:
        """Apply a request's changes here and queue them for the owners; wait for nothing."""
        self._commit_now(deltas, replicate)

    @property
    def waits_for_peers(self) -> bool:
        """Whether a commit waits for the backups' acknowledgements (options 2, 6)."""
        return not self.config.manager.map_send_options & send_options.ASYNCHRONOUS

    def _commit_now(
        self, deltas: Sequence[SessionDelta], replicate: bool
    ) -> tuple[list[Change], asyncio.Future[None] | None]:
        changes = self.commit_local(deltas)
        sent: asyncio.Future[None] | None = None
        entries: list[tuple[str, str | None, int]] = []
        dead: list[tuple[str, int]] = []
        members = self.placement.members()
        for change in changes:
            token = change.token
            if change.is_access_only:
                self.keepalive.touched(token, change.accessed_at)
                continue
            if not replicate and not (change.invalidated or change.renamed_from):
                continue
            record = self.store.get(token)
            if change.invalidated:
                dead.append((token, change.invalidated))
            if change.renamed_from is not None:
                old = self.tombstones.get(change.renamed_from)
                if old is not None:
                    dead.append((change.renamed_from, old[0]))
            route = record.route if record is not None else change.route
            for member in self._other_owners(token, route, members):
                sent = self.replication.queue_to(member, [change])
            if record is not None and change.route_stamp:
                entries.append((token, record.route, record.route_stamp))
        if entries or dead:
            self._announce(entries, dead, [])
        return changes, sent

    def view(self) -> ClusterView:
        """Sessions, members, traffic and roles, for the status page."""
        primaries = self._primaries()
        return ClusterView(
            sessions=len(self.store),
            rejected_sessions=self.rejected_sessions,
            tombstones=len(self.tombstones),
            created=self.sessions_created,
            expired=self.sessions_expired,
            local=self.channel.local,
            members=tuple(self.channel.members),
            channel=self.channel.stats(),
            replication=ReplicationView(
                counters=self.counters,
                state_transferred=self.state_transfer.transferred,
                send_options=self.config.manager.map_send_options,
                lag=self.timings.lag.snapshot(),
                state_transfer_seconds=self.timings.state_transfer_seconds,
            ),
            roles=SessionRoles(
                primaries=primaries,
                backups=len(self.store) - primaries,
                proxies=len(self.proxies),
            ),
        )

    # -- who holds what ------------------------------------------------------------------

    def _primaries(self) -> int:
        route = self.channel.local.route
        return sum(1 for r in self.store if r.route == route)

    def _other_owners(
        self,
        token: str,
        route: str | None = None,
        members: dict[bytes, Member] | None = None,
    ) -> list[Member]:
        """The session's owners other than this node (``route``: the record's by default)."""
        live = self.placement.members() if members is None else members
        if route is None:
            record = self.store.get(token)
            route = record.route if record is not None else self.proxies.route(token)
        local = self.channel.local.id
        return [live[m] for m in self.placement.owners(token, route, live).all if m != local]

    def _index(self) -> list[RouteEntry]:
        """Every session known here, route only: what a joining node learns (its proxies)."""
        entries = [(r.token, r.route, r.route_stamp, r.last_accessed_at) for r in self.store]
        entries.extend((token, route, stamp, 0.0) for token, route, stamp in self.proxies.items())
        return entries

    # -- merging -----------------------------------------------------------------------

    def apply(self, change: Change, *, remote: bool) -> None:
        """Merge a change; for a session not held here, only its route is kept (a proxy).

        A whole session (a copy sent to an owner) or a creation is kept; a later
        check hands copies this node does not own to their owners.
        """
        token = change.token
        keeps = change.invalidated or change.full or change.created_at is not None
        if remote and not keeps and token not in self.store:
            if change.route_stamp:
                self._note_proxy(token, change.route, change.route_stamp)
            return  # a write for a copy that is not here: the owners have it
        # A token enters the proxies only while it is not in the store, and leaves
        # them when it enters the store: a held session has no entry to look up or
        # drop (both decode the token: a third of backup's own cost per write).
        known = None if token in self.store else self.proxies.get(token)
        super().apply(change, remote=remote)
        if known is not None:
            if change.invalidated or token in self.store:
                self.proxies.pop(token)
            record = self.store.get(token)
            if record is not None and known[1] > record.route_stamp:
                # A copy older than what this node heard of its route: that route wins.
                route = Change(token, 0.0, route=known[0], route_stamp=known[1])
                super().apply(route, remote=True)
        if change.renamed_from is not None:
            self.proxies.pop(change.renamed_from)

    def _note_proxy(self, token: str, route: str | None, stamp: int) -> None:
        if token in self.tombstones:
            return
        known = self.proxies.get(token)
        if known is None or stamp > known[1]:
            self.proxies.put(token, route, stamp)

    def expire(self, record: SessionRecord) -> None:
        """Remove an expired session; its primary tells every node (their proxies go)."""
        super().expire(record)
        if record.route == self.channel.local.route and self._started:
            self._announce([], [], [record.token])

    # -- sending -----------------------------------------------------------------------

    def _announce(
        self,
        entries: list[tuple[str, str | None, int]],
        dead: list[tuple[str, int]],
        gone: list[str],
    ) -> asyncio.Task[None]:
        """Tell every node where sessions live now, which ids died, which expired."""
        message = Message(Kind.OWNERS, owners=entries, dead=dead, gone=gone)
        return self._tasks.spawn(self._send_all(message), "clustersession-owners")

    async def _send_all(self, message: Message) -> None:
        """``message`` to every node, acknowledged; the members it missed get it again.

        A stale proxy only costs a request a fetch, but a copy holder that missed a
        move would keep a copy nobody updates: so a few tries, not one.
        """
        targets = [m for i, m in self.placement.members().items() if i != self.channel.local.id]
        payload = encode(message)
        for _ in range(ANNOUNCE_TRIES):
            if not targets:
                return
            try:
                # Acknowledged once applied: a write after a take-over waits for this.
                await self.channel.send(targets, payload, SYNC_ACK)
                return
            except ChannelError as exc:
                live = self.placement.members()
                targets = [m for m in exc.members if m.id in live]
            except ValueError as exc:
                logger.warning("could not tell the members where sessions live: %s", exc)
                return
        logger.warning("could not tell %s where sessions live", ", ".join(map(str, targets)))

    async def _push(self, member: Member, records: list[SessionRecord]) -> bool:
        """Whole sessions to ``member`` in acknowledged chunks; whether all arrived.

        Snapshots are made chunk by chunk, as they are sent: a join's share made at
        once (~700 B a snapshot) held ~70 MB per 100,000 sessions on each primary.
        """
        size = self.config.manager.send_all_sessions_size
        timeout = self.config.manager.access_timeout / 1000
        batches = list(chunked(records, size))
        messages = (Message(Kind.RECORDS, changes=[snapshot(r) for r in b]) for _, b, _ in batches)
        try:
            await asyncio.wait_for(
                send_acknowledged(self.channel, [member], messages), timeout * len(batches)
            )
        except (ChannelError, TimeoutError, ValueError) as exc:
            logger.warning(
                "could not copy %d sessions to %s: %s",
                len(records),
                member,
                exc,
                extra=member_fields(member),
            )
            return False
        return True

    async def _expire_everywhere(self) -> None:
        route = self.channel.local.route
        mine = [r for r in list(self.store) if r.route == route]
        dead = []
        for record in mine:
            change = Change(record.token, self.clock(), invalidated=self.hlc.stamp())
            self.apply(change, remote=False)
            dead.append((record.token, change.invalidated))
        if dead:
            await self._send_all(Message(Kind.OWNERS, dead=dead))

    # -- receiving -----------------------------------------------------------------------

    async def _received(self, message: ChannelMessage) -> None:
        if is_application_payload(message.payload):
            return  # another user of the shared channel (the farm deployer)
        try:
            decoded = decode(message.payload)
        except WireError as exc:
            self.counters.bad_messages += 1
            logger.warning(
                "dropped a session message from %s: %s",
                message.sender,
                exc,
                extra=member_fields(message.sender),
            )
            return
        sender, kind = message.sender, decoded.kind
        if kind is Kind.DELTA:
            self.replication.received(sender, decoded)
            self._check_soon(c.token for c in decoded.changes if _may_move(c))
        elif kind is Kind.TOUCH:
            self.keepalive.received(decoded.touches)
        elif kind is Kind.OWNERS:
            self._owners_received(decoded)
        elif kind is Kind.FETCH:
            work = self.fetcher.serve(sender, decoded.request_id, decoded.token)
            self._tasks.spawn(work, "clustersession-fetch-answer")
        elif kind is Kind.FETCHED:
            self.fetcher.received(sender, decoded)
        elif kind is Kind.RESYNC:
            work = self._answer_resync(sender, decoded.digest, decoded.count, decoded.buckets)
            self._tasks.spawn(work, "clustersession-resync")
        elif kind is Kind.GET_ALL:
            work = self.state_transfer.serve(sender, decoded.request_id)
            self._tasks.spawn(work, "clustersession-state-transfer")
        elif kind is Kind.ALL_CHUNK:
            self.state_transfer.chunk_received(decoded)
        elif kind is Kind.RECORDS:
            self.counters.bad_messages += self.merge_remote(decoded.changes, decoded.dead)
            self._check_soon(c.token for c in decoded.changes)
        # DIGEST and SYNC are the delta manager's: a mixed cluster is not supported.

    def _owners_received(self, message: Message) -> None:
        for token, route, stamp in message.owners:
            self.hlc.observe(stamp)
            self.apply(Change(token, 0.0, route=route, route_stamp=stamp), remote=True)
        self.counters.bad_messages += self.merge_remote([], message.dead)
        for token in message.gone:
            self.proxies.pop(token)
            record = self.store.get(token)
            if record is not None and record.route != self.channel.local.route:
                self.expire(record)  # expired on its primary: a copy follows
        if message.owners:
            self._check_soon(token for token, _, _ in message.owners)

    # -- keeping the copies where they belong ----------------------------------------------

    def member_added(self, member: Member) -> None:
        """A member joined: it gets its share of copies."""
        self._tasks.spawn(self.rebalance(), "clustersession-rebalance")

    def member_disappeared(self, member: Member, reason: str) -> None:
        """A member left: its sessions get new owners at once."""
        self._tasks.spawn(self.rebalance(), "clustersession-rebalance")

    async def rebalance(self) -> None:
        """Place the copies for the current members: re-replicate, take over, hand over.

        For each session held here: if its primary is gone and this node is the
        first of its ranking, it becomes the primary; if this node is the primary,
        backups that did not hold a copy under the previous members get one. Then
        copies this node no longer owns go to their owners (:meth:`check`).
        """
        async with self._rebalancing:
            members = self.placement.members()
            before, self._view = self._view, members
            local = self.channel.local.id
            pushes: dict[bytes, list[SessionRecord]] = {}
            async for record in _paced(list(self.store)):
                owners = self.placement.owners(record.token, record.route, members)
                previous = self.placement.owners(record.token, record.route, before)
                if owners.primary is None:
                    # Only a primary seen to leave is replaced: a node that just joined
                    # does not see every member yet, and must not take their sessions.
                    if previous.primary is not None and owners.backups[:1] == (local,):
                        self.take_over(record)  # its backups get it in the replicator's batch
                    continue
                if owners.primary != local:
                    continue
                for member_id in owners.backups:
                    if member_id not in previous:
                        pushes.setdefault(member_id, []).append(record)
            results = await asyncio.gather(
                *(self._push(members[m], records) for m, records in pushes.items())
            )
            for (_, records), ok in zip(pushes.items(), results, strict=True):
                if ok:
                    self.moves.pushed += len(records)
        await self.check()

    async def check(self, tokens: Iterable[str] | None = None) -> None:
        """Hand each copy this node does not own to its owners, then drop it.

        A copy is only dropped once every owner acknowledged it, so a node that
        leaves the owners never takes the last copy with it. ``tokens``: only
        these sessions (what a message touched); ``None``: every copy held here.
        """
        members = self.placement.members()
        local = self.channel.local.id
        by_owners: dict[tuple[bytes, ...], list[SessionRecord]] = {}
        if tokens is None:
            records = list(self.store)
        else:
            records = [r for r in map(self.store.get, tokens) if r is not None]
        async for record in _paced(records):
            owners = self.placement.owners(record.token, record.route, members)
            if owners.primary is not None and local not in owners:
                # (A copy whose primary is not seen stays: a take-over, or a member
                # this node does not see yet.)
                by_owners.setdefault(owners.all, []).append(record)
        for owner_ids, records in by_owners.items():
            results = await asyncio.gather(*(self._push(members[m], records) for m in owner_ids))
            if not owner_ids or not all(results):
                continue  # kept: it may be the last copy
            for record in records:
                held = self.store.get(record.token)
                if held is None or self.placement.is_owner(held.token, held.route):
                    continue  # gone meanwhile, or ours again
                self.store.pop(held.token)
                self._note_proxy(held.token, held.route, held.route_stamp)
                self.moves.handed_over += 1

    def _check_soon(self, tokens: Iterable[str]) -> None:
        """Check the copies of ``tokens`` soon: one task for every message until it runs
        (a whole-store check per received write would cost O(sessions) per write)."""
        self._check_tokens.update(tokens)
        # Nothing to check (most DELTAs: plain writes to our copies): no task.
        if self._check_tokens and not self._trim_pending and self._started:
            self._trim_pending = True
            self._tasks.spawn(self._check_touched(), "clustersession-backup-check")

    async def _check_touched(self) -> None:
        self._trim_pending = False
        tokens, self._check_tokens = self._check_tokens, set()
        await self.check(tokens)

    async def _check_forever(self) -> None:
        """Now and then: compare the copies held for a random member with it, then check."""
        while True:
            await asyncio.sleep(INTERVAL * random.uniform(0.5, 1.5))
            await self.recover_routes()
            members = [m for i, m in self.placement.members().items() if i != self.channel.local.id]
            if members:
                await self.resync(random.choice(members))
            await self.check()

    async def recover_routes(self) -> None:
        """Ask for the routes again if no member sent them when this node joined.

        Under a join's load (every primary pushing the joiner its share of copies)
        the transfer can time out; without it the node has no proxy entries, and
        RESYNC repairs copies only. The load is over by a later round.
        """
        transfer = self._transfer
        if self.state_transfer.transferred is not False or transfer is None or not transfer.done():
            return
        logger.info("asking again where the sessions live (the transfer on join failed)")
        await self.state_transfer.run()

    # -- repairs ---------------------------------------------------------------------------

    async def _held_from(self, route: str | None) -> tuple[int, int, list[int]]:
        """The digest, number and per-bucket digests of the copies held here whose
        primary is ``route``."""
        return _digests([r async for r in _paced(list(self.store)) if r.route == route])

    def _resync_with(self, member: Member) -> None:
        self._tasks.spawn(self.resync(member), "clustersession-resync")

    async def resync(self, member: Member) -> None:
        """Ask ``member`` to resend the sessions it is primary of that this node should hold."""
        digest, count, buckets = await self._held_from(member.route)
        message = Message(Kind.RESYNC, digest=digest, count=count, buckets=buckets)
        with contextlib.suppress(ChannelError):
            await self.channel.send([member], encode(message), send_options.USE_ACK)

    async def _answer_resync(
        self, member: Member, digest: int, count: int, buckets: Sequence[int] = ()
    ) -> None:
        """Resend ``member`` its copies of our sessions, unless its digest matches.

        Not while a rebalance is pushing copies, nor while a previous answer to
        ``member`` is on its way: its digest differs only because those copies are
        still arriving, and resending them all again (every ~5 s with 100,000
        sessions) kept both nodes busy for good. ``member`` asks again later.

        Only the buckets whose digests differ are resent (``buckets`` empty: all):
        under steady writes the digests differ by the writes in flight, and
        resending every copy then cost ~9x the bytes of the writes themselves.

        When the digests differ, ``member`` may also hold writes we lack (sent to it
        by a node that was primary meanwhile): we then ask for its copies of our
        sessions too (a RESYNC with count -1), so both end with the union.
        """
        if count == GIVE_BACK:
            await self._give_back(member, buckets)
            return
        if self._rebalancing.locked() or member.id in self._resending:
            return
        self._resending.add(member.id)
        try:
            await self._resend(member, digest, count, buckets)
        finally:
            self._resending.discard(member.id)

    async def _resend(
        self, member: Member, digest: int, count: int, buckets: Sequence[int]
    ) -> None:
        self.counters.anti_entropy_rounds += 1
        members = self.placement.members()
        route = self.channel.local.route
        ours = [
            r
            async for r in _paced(list(self.store))
            if r.route == route and member.id in self.placement.owners(r.token, route, members)
        ]
        mine, _, my_buckets = _digests(ours)
        if (mine, len(ours)) == (digest, count):
            return
        ours = _differing(ours, my_buckets, buckets)
        self.counters.sessions_repaired += len(ours)
        dead = [(t, s) for t, (s, _) in self.tombstones.items()]
        size = self.config.manager.send_all_sessions_size
        messages: Iterable[Message] = (  # snapshots chunk by chunk, as _push makes them
            Message(Kind.RECORDS, changes=[snapshot(r) for r in b], dead=dead if last else [])
            for _, b, last in chunked(ours, size)
        )
        with contextlib.suppress(ChannelError):
            await send_acknowledged(self.channel, [member], messages)
            ask = Message(Kind.RESYNC, digest=0, count=GIVE_BACK, buckets=my_buckets)
            await self.channel.send([member], encode(ask), send_options.USE_ACK)

    async def _give_back(self, member: Member, buckets: Sequence[int]) -> None:
        """Send ``member`` the copies held here whose primary it is, of the buckets
        whose digests differ from its ``buckets`` (empty: all of them)."""
        held = [r for r in list(self.store) if r.route == member.route]
        _, _, mine = _digests(held)
        differing = _differing(held, mine, buckets)
        size = self.config.manager.send_all_sessions_size
        messages = (
            Message(Kind.RECORDS, changes=[snapshot(r) for r in b])
            for _, b, _ in chunked(differing, size)
        )
        with contextlib.suppress(ChannelError):
            await send_acknowledged(self.channel, [member], messages)


def _may_move(change: Change) -> bool:
    """Whether a received write may leave a copy here that this node does not own.

    A plain write neither creates a copy (:meth:`BackupManager.apply` keeps only its
    route) nor changes a copy's owners: those follow the route and the members, and
    a membership change checks every copy. Checking after each one cost a task and
    a ranking per write on every backup, for nothing.
    """
    return (
        change.full
        or change.created_at is not None
        or bool(change.route_stamp)
        or change.renamed_from is not None
    )


def _digests(records: Iterable[SessionRecord]) -> tuple[int, int, list[int]]:
    """The XOR of the records' digests, their number, and the XOR per bucket."""
    digest, count, buckets = 0, 0, [0] * BUCKETS
    for record in records:
        digest ^= record.digest
        buckets[bucket_of(record.token)] ^= record.digest
        count += 1
    return digest, count, buckets


def _differing(
    records: list[SessionRecord], mine: Sequence[int], theirs: Sequence[int]
) -> list[SessionRecord]:
    """The ``records`` of the buckets whose digests differ (``theirs`` empty: all)."""
    if len(theirs) != BUCKETS:
        return records
    differ = {b for b in range(BUCKETS) if theirs[b] != mine[b]}
    return [r for r in records if bucket_of(r.token) in differ]


async def _paced(records: list[SessionRecord]) -> AsyncIterator[SessionRecord]:
    """``records``, letting the event loop run every :data:`PACE` of them.

    The periodic passes over the store (check, RESYNC, rebalance) rank each record
    (a BLAKE2b per member): with 100,000 sessions one pass held the loop for ~1 s,
    and requests behind it timed out under load (bench/scaling's wrk errors).
    """
    for index, record in enumerate(records):
        if index and not index % PACE:
            await asyncio.sleep(0)
        yield record
