"""Figure 4: state transfer of many ~1 KiB sessions, and each node's resident memory.

Both nodes are worker processes (``python -m bench.cluster --worker hold|join``) that
report to the run as JSON lines on stdout: node1 holds the sessions, node2 joins.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.cluster.app import SECRET, build_app, delta_manager
from bench.cluster.nodes import Ports, finish, loopback_config, spawn
from bench.cluster.options import Options
from bench.cluster.profiler import PROFILE_DIR, print_profile
from bench.wrk import child_env, realistic_session
from clustersession.sessions import codec
from clustersession.sessions.ids import SessionIds
from clustersession.sessions.record import SessionDelta
from clustersession.sessions.session import Session


def rss_kb(pid: int | str = "self") -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def _session_values(i: int) -> dict[str, Any]:
    """About 1 KiB of session data (msgpack), different for every session."""
    values = realistic_session()
    values["user_id"] = i
    values["email"] = f"user{i}@example.com"
    values["recently_viewed"] = [f"SKU-{(i * 7 + k) % 100000:06d}" for k in range(24)]
    values["preferences"] = {"theme": "dark", "currency": "EUR", "page_size": 50,
                             "note": f"{i:08d}" + "x" * 420}  # fmt: skip
    return values


def _encoded_size(values: dict[str, Any]) -> int:
    return sum(len(codec.encode(v)) for v in values.values())


# -- the worker processes ---------------------------------------------------------


async def worker_hold(sessions: int, mcast_port: int, receiver_port: int) -> None:
    """node1: create the sessions, read each once, report memory, serve the state transfer."""
    app = build_app(loopback_config("node1", mcast_port, receiver_port))
    manager = delta_manager(app)
    await manager.start()
    baseline = rss_kb()
    ids = SessionIds(SECRET, "node1")
    started = time.perf_counter()
    now = time.time()
    batch: list[SessionDelta] = []
    for i in range(sessions):
        encoded = {k: codec.encode(v) for k, v in _session_values(i).items()}
        batch.append(SessionDelta(ids.new_token(), "node1", now, created_at=now, set=encoded))
        if len(batch) == 1000:
            await manager.commit(batch)
            batch = []
            await asyncio.sleep(0)  # as between requests: queued work runs, garbage goes
    if batch:
        await manager.commit(batch)
    created = time.perf_counter() - started
    for record in list(manager.store):  # every session read once, as its user's requests do
        session = Session(ids, manager.lookup(record.token), default_max_inactive_interval=1800,
                          now=now)  # fmt: skip
        assert session["user_id"] is not None
    _emit({"event": "ready", "sessions": len(manager.store), "create_s": created,
           "baseline": baseline, "rss": rss_kb()})  # fmt: skip
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline) == "report\n":
        _emit(
            {"event": "report", "rss": rss_kb(), "counters": dataclasses.asdict(manager.counters)}
        )
    await manager.stop()


async def worker_join(sessions: int, mcast_port: int, receiver_port: int) -> None:
    """node2: time ``manager.start()`` until every session is here."""
    app = build_app(loopback_config("node2", mcast_port, receiver_port))
    manager = delta_manager(app)
    baseline = rss_kb()
    first_member: list[float] = []

    async def watch() -> None:
        while not manager.channel.members:
            await asyncio.sleep(0.001)
        first_member.append(time.perf_counter())

    started = time.perf_counter()
    watcher = asyncio.get_running_loop().create_task(watch())
    await manager.start()
    returned = time.perf_counter()
    deadline = time.monotonic() + 15  # anti-entropy may finish a failed transfer
    while len(manager.store) < sessions and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    complete = time.perf_counter()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    _emit({
        "event": "joined", "sessions": len(manager.store), "start_s": returned - started,
        "complete_s": complete - started,
        "transfer_s": complete - first_member[0] if first_member else None,
        "state_transferred": manager.state_transfer.transferred,
        "baseline": baseline, "rss": rss_kb(),
    })  # fmt: skip
    await manager.stop()


def _emit(document: dict[str, Any]) -> None:
    print(json.dumps(document), flush=True)


# -- the run's side ---------------------------------------------------------------


def _start_worker(
    role: str, sessions: int, mcast: int, receiver: int, workdir: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "bench.cluster", "--worker", role,
        "--sessions", str(sessions), "--mcast-port", str(mcast),
        "--receiver-port", str(receiver),
    ]  # fmt: skip
    if PROFILE_DIR:
        command += ["--profile", str(PROFILE_DIR[0])]
    process: subprocess.Popen[bytes] = spawn(
        command, workdir / f"state-{role}.log", child_env({}), pipes=True
    )
    return process


_LINE_BUFFERS: dict[int, bytearray] = {}


def _read_event(process: subprocess.Popen[bytes], log: Path, timeout: float) -> dict[str, Any]:
    """The next JSON line a worker prints, or an error with its log after ``timeout``."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffer = _LINE_BUFFERS.setdefault(fd, bytearray())
    deadline = time.monotonic() + timeout
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        readable = select.select([fd], [], [], max(remaining, 0))[0] if remaining > 0 else []
        chunk = os.read(fd, 65536) if readable else b""
        if not chunk:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"state-transfer worker failed or timed out:\n{tail}")
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    event: dict[str, Any] = json.loads(line)
    return event


def measure_state(options: Options, ports: Ports, workdir: Path) -> dict[str, Any]:
    n = options.sessions
    size = _encoded_size(_session_values(n - 1))
    print(
        f"\n[4/4] state transfer: node1 (subprocess) holds {n:,} sessions of {size} B "
        "(encoded values); node2 (subprocess) joins"
    )
    mcast, base = ports.mcast(), ports.receiver_base()
    hold = _start_worker("hold", n, mcast, base, workdir)
    join: subprocess.Popen[bytes] | None = None
    try:
        ready = _read_event(hold, workdir / "state-hold.log", 300)
        print(
            f"  node1 created {ready['sessions']:,} sessions in {ready['create_s']:.2f} s; "
            f"RSS after reading each once {ready['rss']['VmRSS'] / 1024:.0f} MB "
            f"(before them {ready['baseline']['VmRSS'] / 1024:.0f} MB)",
            flush=True,
        )
        join = _start_worker("join", n, mcast, base + 1, workdir)
        joined = _read_event(join, workdir / "state-join.log", 180)
        assert hold.stdin is not None
        hold.stdin.write(b"report\n")
        hold.stdin.flush()
        served = _read_event(hold, workdir / "state-hold.log", 30)
        transfer = joined["transfer_s"]
        print(
            f"  node2 start() returned after {joined['start_s']:.2f} s, holding "
            f"{joined['sessions']:,} (all after {joined['complete_s']:.2f} s; "
            f"{transfer:.2f} s of it after node2 first saw node1); "
            f"node2 RSS {joined['rss']['VmRSS'] / 1024:.0f} MB",
            flush=True,
        )
    finally:
        for process in (join, hold):
            if process is not None:
                finish(process)
    if PROFILE_DIR:
        for role in ("hold", "join"):
            print_profile(PROFILE_DIR[0] / f"state-{role}.pstats")
    return {
        "sessions": n,
        "value_bytes_per_session": size,
        "node1_create_s": ready["create_s"],
        "start_s": joined["start_s"],
        "complete_s": joined["complete_s"],
        "transfer_after_member_s": transfer,
        "received": joined["sessions"],
        "state_transferred": joined["state_transferred"],
        "node1_rss_mb": ready["rss"]["VmRSS"] / 1024,
        "node1_rss_before_mb": ready["baseline"]["VmRSS"] / 1024,
        "node1_rss_after_serving_mb": served["rss"]["VmRSS"] / 1024,
        "node1_peak_mb": served["rss"]["VmHWM"] / 1024,
        "node2_rss_mb": joined["rss"]["VmRSS"] / 1024,
        "node2_peak_mb": joined["rss"]["VmHWM"] / 1024,
        "node2_rss_before_mb": joined["baseline"]["VmRSS"] / 1024,
    }
