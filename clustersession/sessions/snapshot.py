"""Session snapshots: a node's sessions in a file, so a whole-farm restart logs no one out.

Tomcat's StandardManager writes ``SESSIONS.ser`` on stop and reads it on start;
ours is msgpack, never pickle: a header map (``format``, ``version``, who wrote
it and when) followed by one :mod:`.wire` RECORDS message holding every session
as a full, stamped change and every dead id. Loading merges them like a peer's
repair (:meth:`~.stamped_store.StampedStore.merge_remote`): the highest stamp
wins per field, expired sessions are dropped and tombstones keep invalidated
ids dead, so a stale snapshot can only add what is still live.

The file is written to a temporary file beside it, flushed to disk and renamed
over the old one: a crash mid-write leaves the previous snapshot whole. A file
that cannot be read is logged, moved aside (``<path>.bad-<time>``) and the node
starts empty.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any, Protocol

import msgpack

from .change import Change, snapshot
from .record import SessionRecord
from .wire import Kind, Message, WireError, decode, encode

logger = logging.getLogger("clustersession.snapshot")

FORMAT = "clustersession-sessions"
VERSION = 1


class SnapshotError(ValueError):
    """A snapshot file that is not one this version can read."""


class Snapshotted(Protocol):
    """What a snapshot reads and fills: a stamped store (DeltaManager, LocalManager)."""

    tombstones: dict[str, tuple[int, float]]

    def records(self) -> Any:
        """The live sessions."""

    def merge_remote(self, changes: list[Change], dead: list[tuple[str, int]]) -> int:
        """Merge sessions and dead ids as a peer's repair."""


def dump(records: list[SessionRecord], dead: list[tuple[str, int]], route: str | None) -> bytes:
    """The bytes of a snapshot of ``records`` and ``dead`` ids."""
    header = {"format": FORMAT, "version": VERSION, "route": route, "written_at": time.time()}
    body = encode(Message(Kind.RECORDS, changes=[snapshot(r) for r in records], dead=dead))
    packed: bytes = msgpack.packb(header, use_bin_type=True)
    return packed + body


def parse(data: bytes) -> tuple[list[Change], list[tuple[str, int]]]:
    """The sessions and dead ids of a snapshot; :class:`SnapshotError` says what is wrong."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=len(data) + 1)
    unpacker.feed(data)
    try:
        header = unpacker.unpack()
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise SnapshotError(f"no snapshot header: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SnapshotError("not a clustersession session snapshot")
    if header.get("version") != VERSION:
        raise SnapshotError(f"snapshot version {header.get('version')!r}, expected {VERSION}")
    try:
        message = decode(data[unpacker.tell() :])
    except WireError as exc:
        raise SnapshotError(str(exc)) from exc
    if message.kind is not Kind.RECORDS:
        raise SnapshotError(f"snapshot body is a {message.kind.name} message, expected RECORDS")
    return message.changes, message.dead


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by a flushed temporary file renamed over it."""
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with temporary.open("wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class SessionSnapshots:
    """Writes ``sessions`` to ``path`` (on demand and every ``interval`` s) and loads it back."""

    def __init__(
        self, sessions: Snapshotted, path: str, interval: float, route: str | None
    ) -> None:
        self.sessions = sessions
        self.path = Path(path)
        self.interval = interval
        self.route = route
        self.written = 0  # snapshots written (for tests and the curious)

    async def write(self) -> int:
        """Write a snapshot now (encoded on the loop, written off it); return how many sessions.

        A failure is logged, never raised: sessions keep being served.
        """
        records = list(self.sessions.records())
        dead = [(token, stamp) for token, (stamp, _) in self.sessions.tombstones.items()]
        data = dump(records, dead, self.route)
        try:
            await asyncio.to_thread(write_atomically, self.path, data)
        except OSError as exc:
            logger.error("could not write the session snapshot %s: %s", self.path, exc)
            return 0
        self.written += 1
        logger.debug("wrote %d sessions to %s", len(records), self.path)
        return len(records)

    async def run_forever(self) -> None:
        """Write a snapshot every ``interval`` seconds: what a crash of every node can lose."""
        self._remove_litter()
        while True:
            await asyncio.sleep(self.interval)
            await self.write()

    def _remove_litter(self) -> None:
        """Remove temporary files of writers that died mid-write (their pid is gone)."""
        for temporary in self.path.parent.glob(f"{self.path.name}.tmp-*"):
            pid = temporary.name.rsplit(".tmp-", 1)[1].split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                temporary.unlink(missing_ok=True)

    def load(self) -> int:
        """Merge the snapshot into the sessions; return how many sessions it held.

        No file: nothing to do. A file that cannot be read: an error is logged,
        the file is moved aside and nothing is loaded.
        """
        self._remove_litter()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            logger.info("no session snapshot at %s: starting empty", self.path)
            return 0
        except OSError as exc:
            logger.error("could not read the session snapshot %s: %s", self.path, exc)
            return 0
        try:
            changes, dead = parse(data)
        except SnapshotError as exc:
            aside = self.path.with_name(f"{self.path.name}.bad-{int(time.time())}")
            logger.error(
                "session snapshot %s is unreadable (%s): starting empty; the file is kept as %s",
                self.path,
                exc,
                aside,
            )
            try:
                os.replace(self.path, aside)
            except OSError as move:
                logger.error("could not move %s aside: %s", self.path, move)
            return 0
        failed = self.sessions.merge_remote(changes, dead)
        logger.info(
            "loaded %d sessions and %d dead ids from %s (%d failed)",
            len(changes),
            len(dead),
            self.path,
            failed,
        )
        return len(changes)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    return True
