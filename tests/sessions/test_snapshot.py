"""Session snapshots in process: round trip, stale files, unreadable files."""

from __future__ import annotations

import logging
from pathlib import Path

import msgpack
import pytest

from clustersession.sessions import codec
from clustersession.sessions.ids import SessionIds
from clustersession.sessions.local_manager import LocalManager
from clustersession.sessions.session import Session
from clustersession.sessions.snapshot import FORMAT, SessionSnapshots, dump

pytestmark = pytest.mark.anyio

IDS = SessionIds("k" * 20, "n1")


async def write(manager: LocalManager, values: dict[str, object], token: str | None = None) -> str:
    record = manager.lookup(token) if token else None
    session = Session(IDS, record, default_max_inactive_interval=600, now=manager.clock())
    session.update(values)
    await manager.commit(session.changes(manager.clock()))
    return session.id.partition(".")[0]


def values(manager: LocalManager, token: str) -> dict[str, object] | None:
    record = manager.lookup(token)
    if record is None:
        return None
    return {k: codec.decode(v) for k, v in record.attributes.items()}


async def test_sessions_and_dead_ids_survive_a_stop_and_start(tmp_path: Path) -> None:
    path = str(tmp_path / "sessions.snapshot")
    first = LocalManager(snapshot_path=path, route="n1")
    await first.start()
    kept = await write(first, {"user": "ann", "cart": [1, 2]})
    dead = await write(first, {"user": "bob"})
    session = Session(IDS, first.lookup(dead), default_max_inactive_interval=600, now=first.clock())
    session.invalidate()
    await first.commit(session.changes(first.clock()))
    created = first.lookup(kept).created_at  # type: ignore[union-attr]
    await first.stop()
    assert not list(tmp_path.glob("*.tmp-*"))  # the temporary file was renamed

    second = LocalManager(snapshot_path=path, route="n1")
    await second.start()
    try:
        assert values(second, kept) == {"user": "ann", "cart": [1, 2]}
        assert second.lookup(kept).created_at == created  # type: ignore[union-attr]
        assert second.lookup(dead) is None and dead in second.tombstones
    finally:
        await second.stop()


async def test_a_stale_snapshot_loses_to_newer_writes_and_drops_expired_sessions(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    manager = LocalManager(clock=lambda: now[0])
    token = await write(manager, {"n": 1})
    short = Session(IDS, None, default_max_inactive_interval=5, now=now[0])
    short["x"] = 1
    await manager.commit(short.changes(now[0]))
    stale = dump(list(manager.records()), [], "n1")
    now[0] += 10  # the short session has expired since
    await write(manager, {"n": 2}, token)
    (tmp_path / "s").write_bytes(stale)
    assert manager.sweep() == 1
    SessionSnapshots(manager, str(tmp_path / "s"), 60, "n1").load()
    assert values(manager, token) == {"n": 2}  # the newer stamp wins
    assert len(manager.store) == 1  # the expired one was not brought back


@pytest.mark.parametrize(
    "content",
    [
        b"\x80\x03}q\x00.",  # a pickle: never loaded
        b"",
        msgpack.packb({"format": FORMAT, "version": 99}),
        msgpack.packb({"format": FORMAT, "version": 1}) + b"\xc1garbage",
        msgpack.packb({"format": "something else", "version": 1}),
    ],
)
async def test_an_unreadable_snapshot_is_logged_kept_aside_and_the_node_starts_empty(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sessions.snapshot"
    path.write_bytes(content)
    manager = LocalManager(snapshot_path=str(path), route="n1")
    with caplog.at_level(logging.ERROR, logger="clustersession.snapshot"):
        await manager.start()
    try:
        assert len(manager.store) == 0
        assert "unreadable" in caplog.text and "starting empty" in caplog.text
        (aside,) = tmp_path.glob("sessions.snapshot.bad-*")
        assert aside.read_bytes() == content
        await write(manager, {"still": "serving"})
    finally:
        await manager.stop()
    assert path.exists()  # a good snapshot replaced the bad one on stop


async def test_temporary_files_of_dead_writers_are_removed_live_ones_kept(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()  # reaped: its pid names no process
    path = tmp_path / "sessions.snapshot"
    litter = tmp_path / f"sessions.snapshot.tmp-{dead_pid.pid}-abcd"
    in_flight = tmp_path / f"sessions.snapshot.tmp-{os.getpid()}-abcd"
    litter.write_bytes(b"half")
    in_flight.write_bytes(b"half")
    SessionSnapshots(LocalManager(), str(path), 60, "n1").load()
    assert not litter.exists() and in_flight.exists()
