"""``HostLock``: one writer per host, however many worker processes are members.

Several workers of one host (one member each) share ``deploy_dir``; each gets
every announcement. An exclusive ``flock`` on a file in ``deploy_dir`` lets one
of them write and run ``on_deploy``; the others wait, then find the digest
already there and skip. ``flock`` belongs to the open file, so two deployers of
one process exclude each other as two processes do (the in-memory tests rely on
it), and the kernel drops it when a process dies.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Final

LOCK_NAME: Final = ".clustersession-farm.lock"
WATCH_LOCK_NAME: Final = ".clustersession-farm-watch.lock"
POLL_SECONDS: Final = 0.02


class HostLock:
    """An exclusive lock on ``deploy_dir``, taken without blocking the event loop."""

    def __init__(self, deploy_dir: Path) -> None:
        self.path = deploy_dir / LOCK_NAME
        self._fd: int | None = None
        self._local = asyncio.Lock()  # this deployer's own tasks queue here first

    async def __aenter__(self) -> HostLock:
        await self._local.acquire()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            # A non-blocking attempt never blocks the loop; a thread blocked in
            # flock could not be cancelled, so poll instead.
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(POLL_SECONDS)
                except BaseException:
                    os.close(fd)
                    raise
            self._fd = fd
        except BaseException:
            self._local.release()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._local.release()


class WatchLock:
    """Which worker of a host watches ``watch_dir``: the one holding this lock, while it lives.

    Every worker of a host would otherwise see the same new file and announce it
    to the whole farm, once each. A non-blocking ``flock`` on a second file in
    ``deploy_dir``, held for the watcher's life (the kernel drops it when its
    process dies, and another worker takes over at its next check).
    """

    def __init__(self, deploy_dir: Path) -> None:
        self.path = deploy_dir / WATCH_LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this watcher holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody of this host holds it; whether we hold it (never blocks)."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Let another worker watch."""
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
