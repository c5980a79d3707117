"""What the web floor may ask a session manager: the ``Manager`` protocol and its answers.

An adapter (ASGI middleware, and later WSGI, Flask, Django) asks one question
per request, :meth:`Manager.open`, commits the request's changes at its end,
and reads :meth:`Manager.view` for the status page. It never names a concrete
manager: :func:`~.managers.manager_for` picks one from the config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..channel import Channel, ChannelStats, Member
from ..channel.histogram import Histogram, HistogramSnapshot
from .record import SessionDelta, SessionRecord


# Not frozen: built on every request, and a frozen dataclass costs ~4x to build.
@dataclass(slots=True)
class Opened:
    """What a request's session id opens."""

    record: SessionRecord | None
    """The live session, or ``None`` (unknown, expired, or retired)."""
    retired: bool = False
    """The id was invalidated or replaced by ``regenerate_id()``: no session, no new cookie."""
    rerouted: bool = False
    """The session's route named a node that is gone; it is this node's now (route binder)."""


@dataclass(slots=True)
class ReplicationCounters:
    """What a replicating manager counts (the status page's "replication")."""

    deltas_sent: int = 0
    deltas_received: int = 0
    replication_failures: int = 0
    touches_sent: int = 0
    gaps_detected: int = 0
    anti_entropy_rounds: int = 0
    sessions_repaired: int = 0
    bad_messages: int = 0
    state_transfers_served: int = 0


@dataclass(slots=True)
class ReplicationTimings:
    """What a replicating manager times, for the metrics."""

    lag: Histogram = field(default_factory=Histogram)
    """Seconds from a DELTA's last write (its stamp, on the writer's clock) to its merge here."""
    state_transfer_seconds: float | None = None
    """How long this node's state transfer took (``None``: none ran, or it is running)."""


@dataclass(frozen=True, slots=True)
class ReplicationView:
    """A replicating manager's state, as the status page shows it."""

    counters: ReplicationCounters
    state_transferred: bool | None
    """``True``: received the sessions on start; ``False``: failed; ``None``: not needed."""
    send_options: int
    lag: HistogramSnapshot | None = None
    """Replication lag, in seconds (see :class:`ReplicationTimings`)."""
    state_transfer_seconds: float | None = None
    """How long the state transfer took (``None``: none, or not finished)."""


@dataclass(frozen=True, slots=True)
class SessionRoles:
    """What a backup manager holds: sessions it is primary of, backup copies, proxy entries."""

    primaries: int
    backups: int
    proxies: int


@dataclass(frozen=True, slots=True)
class ClusterView:
    """One node's sessions and, when distributable, the cluster as it sees it."""

    sessions: int
    rejected_sessions: int
    tombstones: int
    created: int = 0
    """Sessions created by this node's requests since it started."""
    expired: int = 0
    """Sessions this node found idle too long and removed."""
    local: Member | None = None
    members: tuple[Member, ...] = ()
    channel: ChannelStats | None = None
    replication: ReplicationView | None = field(default=None)
    roles: SessionRoles | None = None
    """The backup manager's primaries, backups and proxies (``None``: another manager)."""

    @property
    def distributable(self) -> bool:
        """Whether the sessions are replicated."""
        return self.replication is not None


class Manager(Protocol):
    """A node's sessions, as the web floor sees them."""

    clock: Callable[[], float]
    """Wall time in epoch seconds (a test may give its own)."""

    @property
    def started(self) -> bool:
        """Whether background work runs (an adapter starts the manager if not)."""

    @property
    def channel(self) -> Channel | None:
        """The channel the sessions replicate over (``None``: one node).

        Other users of the process's one channel (the farm deployer) share it.
        """

    @property
    def ready(self) -> bool:
        """Whether it serves: started, the cluster's sessions received, and not stopping."""

    async def join(self) -> None:
        """Start, without waiting for the state transfer (it runs on; see :attr:`ready`)."""

    async def start(self) -> None:
        """Start background work; a replicating manager joins its cluster first.

        Returns once the node serves (a joining node has the cluster's sessions).
        """

    async def stop(self) -> None:
        """Stop background work (and leave the cluster)."""

    @property
    def fetches(self) -> bool:
        """Whether :meth:`fetch` may bring a session here (the backup manager)."""

    async def fetch(self, token: str, route: str | None = None) -> None:
        """Before :meth:`open`: bring session ``token`` here if another node holds it.

        ``route`` is the one the cookie names. Managers that hold every session
        here do nothing; the caller may skip the call when :attr:`fetches` is false.
        """

    def open(self, token: str) -> Opened:
        """The session ``token`` names, for one request."""

    def may_create(self) -> bool:
        """Whether a request may start a session now (``max_active_sessions``)."""

    def lookup(self, token: str) -> SessionRecord | None:
        """The live session ``token`` names, read only (the admin API; no re-routing)."""

    def records(self) -> Iterator[SessionRecord]:
        """The live sessions this node holds (every session of the cluster, for DeltaManager).

        A snapshot: the caller may commit (invalidate) while iterating.
        """

    async def commit(self, deltas: Sequence[SessionDelta], *, replicate: bool = True) -> object:
        """Apply a request's changes (and replicate them, unless ``replicate`` is false)."""

    def commit_nowait(self, deltas: Sequence[SessionDelta], *, replicate: bool = True) -> None:
        """Apply a request's changes now and queue their replication; wait for nothing.

        Only where :attr:`waits_for_peers` is false; what runs on the manager's loop
        after this call sees the changes.
        """

    @property
    def waits_for_peers(self) -> bool:
        """Whether a commit waits for other nodes (send options 2 and 6)."""

    def sweep(self) -> int:
        """Destroy the sessions expired now (the background sweep's work); return how many."""

    def view(self) -> ClusterView:
        """The numbers and members the status page shows."""
