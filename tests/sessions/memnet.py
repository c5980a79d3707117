"""Managers over the in-memory network: nodes, request changes, and what converged means.

DeltaManagers, or BackupManagers with ``Cluster(seed, kind="backup")``.

Requests are played as the middleware would commit them (``SessionDelta``), on
tokens drawn from a seeded generator and with a fixed clock, so a schedule is
replayed exactly from its seed.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from clustersession.channel.member import Member
from clustersession.channel.testing import InMemoryNetwork
from clustersession.config import ClusterConfig
from clustersession.sessions import codec
from clustersession.sessions.backup_manager import BackupManager
from clustersession.sessions.delta_manager import DeltaManager
from clustersession.sessions.record import SessionDelta

NOW = 1_700_000_000.0
"""Every node's wall clock: stamps then differ by their logical counter only, so
which of two concurrent writes wins depends on the schedule, not on timing."""


Node = DeltaManager | BackupManager


def exchange_digest(manager: DeltaManager, peer: Member) -> Awaitable[None]:
    """One anti-entropy round of ``manager`` with ``peer`` (what its timer would start)."""
    return manager.anti_entropy.exchange(peer)


class Cluster:
    """DeltaManagers on one :class:`InMemoryNetwork`, started and stopped together."""

    def __init__(self, seed: int = 0, **defaults: Any) -> None:
        """``defaults``: manager settings of every node (``kind="backup"``: BackupManagers)."""
        self.network = InMemoryNetwork(seed)
        self.nodes: list[Any] = []
        self.defaults = defaults

    def manager(self, route: str, *, send_options: int = 8, **manager: Any) -> Any:
        """A node (not started) with ``route`` and ``manager`` settings."""
        base = ClusterConfig(jvm_route=route, distributable=True, channel_send_options=send_options)
        config = replace(base, manager=replace(base.manager, **{**self.defaults, **manager}))
        channel = self.network.channel(config)
        kind = BackupManager if config.manager.kind == "backup" else DeltaManager
        node = kind(config, clock=lambda: self.now, channel=channel)
        self.nodes.append(node)
        return node

    now = NOW

    async def start(self, route: str, **settings: Any) -> Any:
        """A started node. The first has nobody to ask for sessions: its state transfer
        is off, else DeltaManager polls for members for seconds of real time."""
        if not self.nodes:
            settings.setdefault("state_transfer_timeout", 0)
        node = self.manager(route, **settings)
        await node.start()
        return node

    async def stop(self) -> None:
        """Stop every node (newest first)."""
        for node in reversed(self.nodes):
            await node.stop()

    def partition(self, *groups: list[Node]) -> None:
        """Cut the network between groups of nodes (see InMemoryNetwork.partition)."""
        self.network.partition(*([node.channel.local for node in group] for group in groups))

    async def anti_entropy(self, rounds: int = 10) -> int:
        """Digest exchanges between every pair until a round repairs nothing.

        Returns the number of rounds run (the last one quiet); the caller checks
        convergence, so a round limit reached is reported there, with the seed.
        """
        for done in range(1, rounds + 1):
            before = [n.counters.sessions_repaired for n in self.nodes]
            for node in self.nodes:
                for peer in node.channel.members:
                    await exchange_digest(node, peer)
                    await self.network.settle()
            if before == [n.counters.sessions_repaired for n in self.nodes]:
                return done
        return rounds


def create(token: str, route: str, **values: Any) -> SessionDelta:
    """A request that starts session ``token`` with ``values``."""
    return SessionDelta(
        token,
        route,
        NOW,
        created_at=NOW,
        set=encoded(values),
        max_inactive_interval=1800,
    )


def write(token: str, route: str | None, **values: Any) -> SessionDelta:
    """A request that sets ``values`` in an existing session."""
    return SessionDelta(token, route, NOW, set=encoded(values))


def remove(token: str, route: str | None, *names: str) -> SessionDelta:
    """A request that deletes ``names`` from a session."""
    return SessionDelta(token, route, NOW, removed=names)


def invalidate(token: str, route: str | None) -> SessionDelta:
    """A request that calls ``session.invalidate()``."""
    return SessionDelta(token, route, NOW, invalidated=True)


def regenerate(old: str, new: str, route: str | None) -> SessionDelta:
    """A request that calls ``session.regenerate_id()`` (``old`` becomes ``new``)."""
    return SessionDelta(new, route, NOW, renamed_from=old)


def encoded(values: dict[str, Any]) -> dict[str, bytes]:
    return {name: codec.encode(value) for name, value in values.items()}


def sessions(node: DeltaManager) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """What a user would find on ``node``: each session's route and decoded values."""
    return {
        r.token: (r.route, {k: codec.decode(v) for k, v in sorted(r.attributes.items())})
        for r in node.store
    }


def values(node: Node, token: str) -> dict[str, Any] | None:
    """The decoded values of a live session, or None."""
    record = node.lookup(token)
    if record is None:
        return None
    return {k: codec.decode(v) for k, v in record.attributes.items()}


def divergence(nodes: list[DeltaManager]) -> str:
    """Empty if every node holds the same sessions, values and digests; else what differs."""
    first, problems = nodes[0], []
    for other in nodes[1:]:
        name = f"{first.channel.local.route} vs {other.channel.local.route}"
        mine, theirs = sessions(first), sessions(other)
        if mine != theirs:
            only = sorted(set(mine) ^ set(theirs))
            changed = sorted(t for t in set(mine) & set(theirs) if mine[t] != theirs[t])
            problems.append(f"{name}: sessions differ (only on one: {only}, values: {changed})")
        if first.store.buckets != other.store.buckets:
            problems.append(f"{name}: bucket digests differ")
        if set(first.tombstones) != set(other.tombstones):
            problems.append(f"{name}: dead ids differ")
    return "; ".join(problems)
