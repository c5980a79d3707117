"""Receiving an artifact: chunks into a partial file, hashed on the way, verified at the end.

A chunk is written as soon as it arrives, so memory holds at most ``window``
chunks whatever the artifact's size. The chunks come from a :class:`ChunkSource`:
a peer over the channel (:class:`~.peer.PeerSource`) or a local file
(:class:`FileSource`, for an artifact this node deploys itself). Whatever goes
wrong (the source leaves, a chunk is short, the digest differs) the partial
file is removed and :class:`TransferError` is raised: ``deploy_dir`` never sees it.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

from .store import ArtifactStore
from .wire import Entry

CHUNK_SIZE: Final = 256 * 1024
"""Small enough that a session message waits little behind one on a connection."""

WINDOW: Final = 4
"""Chunks asked for ahead of the one being written (throughput over a round trip)."""


class TransferError(RuntimeError):
    """An artifact could not be received (nothing was deployed)."""


class ChunkSource(Protocol):
    """Where the bytes of an artifact come from."""

    async def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (fewer only at the end)."""


class FileSource:
    """An artifact in a local file (read in a thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def read(self, offset: int, length: int) -> bytes:
        return await asyncio.to_thread(read_range, self.path, offset, length)


def read_range(path: Path, offset: int, length: int) -> bytes:
    """``length`` bytes of ``path`` at ``offset`` (blocking)."""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)


def _write(out: BinaryIO, digest: Any, data: bytes) -> None:
    out.write(data)
    digest.update(data)  # hashing 256 KiB is CPU work too: keep it off the loop


async def receive(
    store: ArtifactStore,
    entry: Entry,
    source: ChunkSource,
    *,
    chunk_size: int = CHUNK_SIZE,
    rate: int = 0,
) -> Path:
    """Fetch ``entry`` from ``source`` into a verified partial file; its path.

    ``rate`` (bytes/s, 0: unlimited) paces the chunks asked for: moving a file
    costs CPU on both ends (frame tags, copies, SHA-256, writes), and unpaced it
    takes every core it can get, which session replication on the same hosts
    then waits for.
    """
    started = time.monotonic()
    part, out = await asyncio.to_thread(store.open_part)
    digest = hashlib.sha256()
    pending: collections.deque[asyncio.Task[bytes]] = collections.deque()
    offsets = iter(range(0, entry.size, chunk_size))
    try:
        try:

            def ask_next() -> None:
                offset = next(offsets, None)
                if offset is not None:
                    length = min(chunk_size, entry.size - offset)
                    work: Awaitable[bytes] = source.read(offset, length)
                    pending.append(asyncio.ensure_future(work))

            for _ in range(WINDOW):
                ask_next()
            received = 0
            while pending:
                data = await pending.popleft()
                expected = min(chunk_size, entry.size - received)
                if len(data) != expected:
                    raise TransferError(
                        f"chunk at {received} of {entry.name!r} has {len(data)} bytes, "
                        f"expected {expected} (the file changed at its source?)"
                    )
                await asyncio.to_thread(_write, out, digest, data)
                received += len(data)
                ahead = started + received / rate - time.monotonic() if rate else 0.0
                # Paced, or at least a loop iteration: session traffic goes between chunks.
                await asyncio.sleep(max(ahead, 0.0))
                ask_next()
            await asyncio.to_thread(out.flush)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await asyncio.to_thread(out.close)
        if digest.hexdigest() != entry.digest:
            raise TransferError(
                f"{entry.name!r}: SHA-256 {digest.hexdigest()} does not match the announced "
                f"{entry.digest}"
            )
    except BaseException:
        await asyncio.to_thread(part.unlink, missing_ok=True)
        raise
    return part


def file_digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 (hex) of ``path``, read in chunks (blocking)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
