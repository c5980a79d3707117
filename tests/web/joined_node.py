"""A WSGI adapter's BackupManager that has never heard of a session its client holds.

What a node that just joined sees (no proxy entry yet): the session lives on two
peers, and the cookie names its primary's route. Everything runs on the in-memory
network, on the loop of the adapter's :class:`ManagerThread` (the peers too), so a
test stays in one process with no sockets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clustersession.config import ClusterConfig
from clustersession.sessions.backup_manager import BackupManager
from clustersession.sessions.ids import SessionIds
from clustersession.sessions.listeners import SessionListener
from clustersession.sessions.threaded import ManagerThread
from tests.sessions.memnet import Cluster, create

PEER = "a"
"""The route of the session's primary (the cookie names it)."""


class JoinedNode:
    """The adapter's node (route ``route``) and two backup peers on one in-memory network."""

    def __init__(self, route: str) -> None:
        self.route = route
        self.cluster = Cluster(seed=5, kind="backup", backups=1, state_transfer_timeout=5)

    def manager_for(
        self,
        config: ClusterConfig,
        *,
        listeners: Sequence[SessionListener] = (),
        idle_timeout: int,
    ) -> BackupManager:
        """Stands in for ``managers.manager_for``: the adapter's node, built on its loop.

        It starts first (nobody to ask for sessions); the peers join it later.
        """
        node: BackupManager = self.cluster.manager(self.route, state_transfer_timeout=0)
        return node

    def unknown_session(self, thread: ManagerThread, secret: str, **values: Any) -> str:
        """Start the peers; the primary creates a session the adapter's node holds no
        copy of and never hears of (cut off meanwhile). Returns the client's cookie value."""
        return thread.run(self._unknown_session(secret, values))

    async def _unknown_session(self, secret: str, values: dict[str, Any]) -> str:
        here = self.node
        peer = await self.cluster.start(PEER)
        other = await self.cluster.start("b")
        await self.cluster.network.settle()
        ids = SessionIds(secret, PEER)
        token = ids.new_token()
        while here.channel.local.id in peer.placement.owners(token, PEER):
            token = ids.new_token()  # one the adapter's node is no backup of
        self.cluster.partition([here], [peer, other])
        await peer.commit([create(token, PEER, **values)])
        await self.cluster.network.settle()
        self.cluster.network.heal()
        assert token not in here.store and token not in here.proxies
        return ids.full_id(token)

    @property
    def node(self) -> BackupManager:
        """The adapter's node."""
        node: BackupManager = self.cluster.nodes[0]
        return node

    def holds_as_primary(self, thread: ManagerThread, token: str) -> bool:
        """Whether the adapter's node now holds ``token`` as its primary."""

        def check() -> bool:
            record = self.node.store.get(token)
            return record is not None and record.route == self.route

        return thread.call(check)

    def stop(self, thread: ManagerThread) -> None:
        """Stop the peers (the adapter stops its own node)."""

        async def stop_peers() -> None:
            for node in reversed(self.cluster.nodes[1:]):
                await node.stop()

        if thread.running:
            thread.run(stop_peers())
