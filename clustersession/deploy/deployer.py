"""``FarmDeployer``: a node's farm deployer (Tomcat's FarmWarDeployer, for files).

It answers the farm's requests on the node's channel (shared with the session
manager, see :mod:`clustersession.channel.application`):

* ANNOUNCE: fetch the artifact from the announcer in chunks, verify, move it
  into ``deploy_dir``, run ``on_deploy``; a digest already there is skipped.
* UNDEPLOY: remove it, run ``on_undeploy``.
* LIST: say what is deployed and what was removed.

All of it under the :class:`~.lock.HostLock`, so the worker processes of one
host write once and run the hooks once. On start it converges with the oldest
node (fetches what it lacks, removes what was undeployed meanwhile) and, with
``watch_enabled``, watches ``watch_dir`` (:mod:`.watch`).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..channel import Channel, ChannelError, GroupChannel, Member
from ..channel.application import nodes
from ..channel.tasks import BackgroundTasks
from ..config import ClusterConfig
from .endpoint import REPLY_TIMEOUT, FarmEndpoint, PeerSource
from .fanout import Outcome, ask_all
from .hooks import run_hook
from .lock import HostLock
from .names import BadName, check_name
from .store import ArtifactStore
from .transfer import ChunkSource, FileSource, TransferError, receive
from .wire import Entry, Kind, Message

if TYPE_CHECKING:
    from .watch import Watcher

logger = logging.getLogger("clustersession.deploy")

MEMBER_WAIT: Final = 2  # heartbeats to wait for a peer to converge with
ANNOUNCE_TIMEOUT: Final = 3600.0


class Refused(ValueError):
    """An artifact this node will not deploy (bad name, too large)."""


class FarmDeployer:
    """The farm deployer of one node; ``channel`` is shared (None: its own GroupChannel)."""

    def __init__(self, config: ClusterConfig, *, channel: Channel | None = None) -> None:
        settings = config.deployer
        if settings.deploy_dir is None:
            raise ValueError("the farm deployer needs deployer.deploy_dir")
        self.config = config
        self.settings = settings
        self._owns_channel = channel is None
        self.channel: Channel = channel if channel is not None else GroupChannel(config)
        deploy_dir = Path(settings.deploy_dir)
        temp_dir = Path(settings.temp_dir or tempfile.gettempdir())
        self.store = ArtifactStore(deploy_dir, temp_dir)
        self.lock = HostLock(deploy_dir)
        self.endpoint = FarmEndpoint(self.channel, handler=self._handle, offers=self._offer)
        self._offered: dict[str, Path] = {}  # local files this node announced (watch mode)
        self._tasks = BackgroundTasks(logger)
        self.converged = asyncio.Event()
        # Set once start() prepared the directories. A deployer is built before its
        # shared channel joins, so that no request is lost; requests that come
        # before start() wait for it here instead of finding no deploy_dir.
        self._ready = asyncio.Event()
        self.deployed = 0  # artifacts this node wrote (not skipped)
        self.refused = 0
        self.announced = 0  # deploys and undeploys this node asked of the farm (watch mode)
        self.watcher: Watcher | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Prepare the directories, join (if the channel is ours), converge, watch."""
        await asyncio.to_thread(self.store.deploy_dir.mkdir, parents=True, exist_ok=True)
        async with self.lock:  # nobody of this host is writing: partial files are litter
            litter = await asyncio.to_thread(self.store.prepare)
        if litter:
            logger.info("removed %d partial artifacts left in %s", litter, self.store.temp_dir)
        if self._owns_channel:
            await self.channel.start()
        self._tasks.spawn(self._converge(), "clustersession-farm-converge")
        if self.settings.watch_enabled:
            from .watch import Watcher  # only nodes that watch need it

            self.watcher = Watcher(self, Path(str(self.settings.watch_dir)))
            self._tasks.spawn(self.watcher.run_forever(), "clustersession-farm-watch")
        self._ready.set()

    async def stop(self) -> None:
        """Stop background work and transfers (partial files are removed), leave if ours."""
        await self._tasks.cancel_all()
        await self.endpoint.stop()
        if self._owns_channel:
            await self.channel.stop()

    # -- requests from the farm ---------------------------------------------------------------

    async def _handle(self, sender: Member, message: Message) -> None:
        await self._ready.wait()
        if message.kind is Kind.ANNOUNCE:
            entry = Entry(message.name, message.size, message.digest, message.at)
            ok, detail = await self._outcome(
                self.deploy(entry, PeerSource(self.endpoint, sender, entry.digest))
            )
            answer = Message(Kind.RESULT, request=message.request, ok=ok, detail=detail)
        elif message.kind is Kind.UNDEPLOY:
            ok, detail = await self._outcome(self.undeploy(message.name, message.at))
            answer = Message(Kind.RESULT, request=message.request, ok=ok, detail=detail)
        elif message.kind is Kind.LIST:
            manifest = await asyncio.to_thread(self.store.manifest)
            answer = Message(
                Kind.LISTING,
                request=message.request,
                entries=list(manifest.entries.values()),
                removed=list(manifest.removed.items()),
            )
        else:
            return
        try:
            await self.endpoint.send(sender, answer)
        except ChannelError as exc:
            logger.warning("could not answer %s: %s", sender, exc)

    async def _outcome(self, work: Coroutine[Any, Any, str]) -> tuple[bool, str]:
        """Run a deploy or undeploy; (ok, detail) for the RESULT, failures logged."""
        try:
            return True, await work
        except (Refused, BadName) as exc:
            self.refused += 1
            logger.error("farm: refused: %s", exc)
            return False, f"refused: {exc}"
        except (TransferError, OSError) as exc:
            logger.error("farm: failed: %s", exc)
            return False, f"failed: {exc}"

    async def _offer(self, digest: str) -> Path | None:
        offered = self._offered.get(digest)
        if offered is not None:
            return offered
        return await asyncio.to_thread(self.store.path_of, digest)

    # -- deploying here ------------------------------------------------------------------------

    async def deploy(self, entry: Entry, source: ChunkSource) -> str:
        """Deploy ``entry`` here from ``source`` (once per host); what happened."""
        check_name(entry.name)
        limit = self.settings.max_artifact_size
        if entry.size > limit:
            raise Refused(f"{entry.name!r} has {entry.size} bytes, over max_artifact_size {limit}")
        async with self.lock:
            if await asyncio.to_thread(self.store.has, entry):
                return "already deployed"
            part = await receive(self.store, entry, source, rate=self.settings.transfer_rate)
            path = await asyncio.to_thread(self.store.install, part, entry)
            self.deployed += 1
            logger.info("farm: deployed %s (%d bytes, %s)", path, entry.size, entry.digest[:12])
            if self.settings.on_deploy:
                await run_hook(self.settings.on_deploy, "deploy", path)
        return "deployed"

    async def undeploy(self, name: str, at: float) -> str:
        """Remove ``name`` here (undeployed at ``at``); what happened."""
        check_name(name)
        async with self.lock:
            path = await asyncio.to_thread(self.store.remove, name, at)
            if path is None:
                return "not deployed"
            logger.info("farm: undeployed %s", path)
            if self.settings.on_undeploy:
                await run_hook(self.settings.on_undeploy, "undeploy", path)
        return "undeployed"

    # -- this node as the origin (watch mode) -------------------------------------------------

    async def deploy_everywhere(self, entry: Entry, path: Path) -> Outcome:
        """Deploy the local file ``path`` here and on every node (watch mode)."""
        await self.deploy(entry, FileSource(path))
        self.announced += 1
        self._offered[entry.digest] = path
        try:
            return await ask_all(
                self.endpoint,
                nodes(self.channel.members),
                lambda: Message(
                    Kind.ANNOUNCE,
                    name=entry.name,
                    size=entry.size,
                    digest=entry.digest,
                    at=entry.deployed_at,
                ),
                ANNOUNCE_TIMEOUT,
                silence=REPLY_TIMEOUT,
            )
        finally:
            self._offered.pop(entry.digest, None)

    async def undeploy_everywhere(self, name: str) -> Outcome:
        """Undeploy ``name`` here and on every node (watch mode)."""
        at = time.time()
        await self.undeploy(name, at)
        self.announced += 1
        return await ask_all(
            self.endpoint,
            nodes(self.channel.members),
            lambda: Message(Kind.UNDEPLOY, name=name, at=at),
            ANNOUNCE_TIMEOUT,
            silence=REPLY_TIMEOUT,
        )

    # -- convergence ----------------------------------------------------------------------------

    async def _converge(self) -> None:
        """Compare with the oldest node that answers; fetch what we lack, remove the undeployed."""
        try:
            wait = MEMBER_WAIT * self.config.membership.frequency / 1000 + 1.0
            deadline = time.monotonic() + wait
            while not nodes(self.channel.members) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # membership settles within two heartbeats
            for peer in nodes(self.channel.members):  # oldest first
                try:
                    listing = await self.endpoint.ask(
                        peer, Message(Kind.LIST), 30.0, silence=REPLY_TIMEOUT
                    )
                except (ChannelError, TransferError, TimeoutError) as exc:
                    logger.info("farm: %s did not list its artifacts (%s)", peer, exc)
                    continue
                await self._reconcile(peer, listing)
                return
        finally:
            self.converged.set()

    async def _reconcile(self, peer: Member, listing: Message) -> None:
        manifest = await asyncio.to_thread(self.store.manifest)
        for entry in listing.entries:
            mine = manifest.entries.get(entry.name)
            if mine is not None and (
                mine.digest == entry.digest or mine.deployed_at >= entry.deployed_at
            ):
                continue
            if manifest.removed.get(entry.name, -1.0) >= entry.deployed_at:
                continue  # undeployed here after the peer deployed it
            _, detail = await self._outcome(
                self.deploy(entry, PeerSource(self.endpoint, peer, entry.digest))
            )
            logger.info("farm: caught up on %s from %s: %s", entry.name, peer, detail)
        for name, at in listing.removed:
            mine = manifest.entries.get(name)
            if mine is not None and mine.deployed_at <= at:
                _, detail = await self._outcome(self.undeploy(name, at))
                logger.info("farm: caught up on the undeploy of %s: %s", name, detail)
