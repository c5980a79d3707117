"""``Watcher``: watch mode (Tomcat's ``watchEnabled``/``WarWatcher``), for files.

Every ``process_deploy_frequency`` seconds the watch directory is listed. A file
is deployed once it has stopped growing (same size and modification time at two
checks in a row) and its content is not what was last deployed under its name;
a file that was deployed from here and is gone is undeployed everywhere.

Of the worker processes of one host, only the one holding the
:class:`~.lock.WatchLock` checks (the others try again every period), so a file
is announced to the farm once, not once per worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..channel import Member
from .lock import WatchLock
from .names import BadName, check_name
from .transfer import TransferError, file_digest
from .wire import Entry

if TYPE_CHECKING:
    from .deployer import FarmDeployer

logger = logging.getLogger("clustersession.deploy")

Snapshot = dict[str, tuple[int, int]]  # name -> (size, mtime_ns)


def scan(directory: Path) -> Snapshot:
    """The regular files of ``directory`` with acceptable names (blocking)."""
    found: Snapshot = {}
    try:
        children = list(directory.iterdir())
    except FileNotFoundError:
        return found
    for child in children:
        try:
            check_name(child.name)
        except BadName:
            continue  # dot files, editors' temporary files...
        try:
            if child.is_symlink() or not child.is_file():
                continue
            stat = child.stat()
        except FileNotFoundError:
            continue
        found[child.name] = (stat.st_size, stat.st_mtime_ns)
    return found


class Watcher:
    """Deploys what appears or changes in ``directory``; undeploys what disappears."""

    def __init__(self, deployer: FarmDeployer, directory: Path) -> None:
        self.deployer = deployer
        self.directory = directory
        self.period = float(deployer.settings.process_deploy_frequency)
        self._previous: Snapshot = {}
        self._deployed: Snapshot = {}  # what was last deployed from here, by name
        self.lock = WatchLock(deployer.store.deploy_dir)
        self.rounds = 0  # periods gone by, whether this worker checked or not

    async def run_forever(self) -> None:
        """Check every period, if this worker is its host's watcher, until cancelled."""
        await self.deployer.converged.wait()  # compare with the farm before pushing to it
        try:
            while True:
                if self.lock.held:
                    await self.check()
                elif await asyncio.to_thread(self.lock.try_acquire):
                    await self.take_over()
                self.rounds += 1
                await asyncio.sleep(self.period)
        finally:
            self.lock.release()

    async def take_over(self) -> None:
        """Start from what this host deployed: files of the directory that are deployed as
        they are now count as deployed from here (not announced again; undeployed when removed).
        """
        now = await asyncio.to_thread(scan, self.directory)
        manifest = await asyncio.to_thread(self.deployer.store.manifest)
        for name, state in now.items():
            entry = manifest.entries.get(name)
            if entry is None or entry.size != state[0]:
                continue
            try:
                _, digest = await asyncio.to_thread(file_digest, self.directory / name)
            except OSError:
                continue
            if digest == entry.digest:
                self._deployed[name] = state
        self._previous = now

    async def check(self) -> None:
        """One pass over the directory."""
        now = await asyncio.to_thread(scan, self.directory)
        for name, state in now.items():
            if self._previous.get(name) != state or self._deployed.get(name) == state:
                continue  # still growing, or already deployed as it is
            path = self.directory / name
            try:
                size, digest = await asyncio.to_thread(file_digest, path)
            except OSError as exc:
                logger.warning("farm: cannot read %s: %s", path, exc)
                continue
            try:
                outcome = await self.deployer.deploy_everywhere(
                    Entry(name, size, digest, time.time()), path
                )
            except (ValueError, TransferError, OSError) as exc:  # refused, or unreadable
                logger.error("farm: cannot deploy %s: %s", path, exc)
                continue
            self._deployed[name] = state
            self._log("deploy", name, outcome.failed)
        for name in [n for n in self._deployed if n not in now]:
            del self._deployed[name]
            outcome = await self.deployer.undeploy_everywhere(name)
            self._log("undeploy", name, outcome.failed)
        self._previous = now

    @staticmethod
    def _log(action: str, name: str, failed: Mapping[Member, str]) -> None:
        if failed:
            names = ", ".join(f"{m}: {why}" for m, why in failed.items())
            logger.error("farm: watch %s of %s failed on %s", action, name, names)
        else:
            logger.info("farm: watch %s of %s confirmed by every member", action, name)
