"""Bytes per proxy entry and per held session copy, in one process (issue 12's memory).

``python -m bench.memory`` (``--sessions``, 100,000): each figure is measured in a
fresh interpreter of its own, by ``tracemalloc`` (the bytes Python allocated and
still holds) and by ``VmRSS`` (what the kernel counts, allocator slack included),
before and after a node receives ``--sessions`` of one kind of entry as it does on
a cluster, from decoded wire messages:

* ``proxy``: a backup node told where sessions live (OWNERS messages of 1,000);
* ``copy-backup`` / ``copy-delta``: a node receiving copies of sessions created on
  another node (the create write, as a DELTA carries it), ``bench.scaling``'s
  ~400 B sessions, into a backup resp. delta manager;
* ``copy-snapshot``: the same sessions arriving whole (RECORDS: a join's share,
  re-replication), into a backup manager.

The figures of record are in bench/README.md (``python -m bench.memory``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Final

from bench.scaling.app import SECRET, rss_kb, session_values
from clustersession.channel.testing import InMemoryNetwork
from clustersession.config import ClusterConfig
from clustersession.sessions import codec
from clustersession.sessions.backup_manager import BackupManager
from clustersession.sessions.change import snapshot
from clustersession.sessions.clock import HybridClock
from clustersession.sessions.delta_manager import DeltaManager
from clustersession.sessions.ids import SessionIds
from clustersession.sessions.record import SessionDelta
from clustersession.sessions.stamped_store import StampedStore
from clustersession.sessions.wire import Kind, Message, decode, encode

WHAT: Final = ("proxy", "copy-backup", "copy-delta", "copy-snapshot")
BATCH: Final = 1000  # entries per message
ORIGINS: Final = 7  # the other nodes of an 8-node cluster, whose routes the entries carry


def _config(kind: str, route: str) -> ClusterConfig:
    base = ClusterConfig(jvm_route=route, distributable=True, channel_send_options=8)
    manager = dataclasses.replace(base.manager, kind=kind, state_transfer_timeout=0)
    return dataclasses.replace(base, manager=manager)


def _payloads(what: str, sessions: int) -> list[bytes]:
    """The messages that bring ``sessions`` entries of ``what``, encoded."""
    payloads: list[bytes] = []
    origins = [StampedStore(node=n) for n in range(1, ORIGINS + 1)]
    ids = [SessionIds(SECRET, f"node{n + 2}") for n in range(ORIGINS)]
    now = time.time()
    for first in range(0, sessions, BATCH):
        owners: list[tuple[str, str | None, int]] = []
        changes = []
        for i in range(first, min(first + BATCH, sessions)):
            number = i % ORIGINS
            route = f"node{number + 2}"
            token = ids[number].new_token()
            if what == "proxy":
                owners.append((token, route, HybridClock(number).stamp()))
                continue
            origin = origins[number]
            values = {k: codec.encode(v) for k, v in session_values(i).items()}
            (change,) = origin.commit_local(
                [SessionDelta(token, route, now, created_at=now, set=values)]
            )
            changes.append(change)
            if what == "copy-snapshot":
                changes[-1] = snapshot(origin.store.pop(token))  # type: ignore[arg-type]
        kind = Kind.OWNERS if what == "proxy" else Kind.RECORDS
        payloads.append(encode(Message(kind, owners=owners, changes=changes)))
    return payloads


async def _receive(what: str, sessions: int, trace: bool) -> dict[str, Any]:
    network = InMemoryNetwork(0)
    kind = "delta" if what == "copy-delta" else "backup"
    config = _config(kind, "node1")
    channel = network.channel(config)
    manager: Any = (DeltaManager if kind == "delta" else BackupManager)(config, channel=channel)
    await manager.start()
    payloads = _payloads(what, sessions)
    gc.collect()
    if trace:
        tracemalloc.start()
    rss_before = rss_kb()
    for payload in payloads:
        message = decode(payload)
        if what == "proxy":
            manager._owners_received(message)
        else:
            manager.merge_remote(message.changes, message.dead)
        await asyncio.sleep(0)  # the checks a message starts run, as on a node
    del message
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    held = len(manager.store) + len(getattr(manager, "proxies", ()))
    traced = tracemalloc.get_traced_memory()[0] if trace else 0
    rss = (rss_kb() - rss_before) * 1024
    await manager.stop()
    return {"what": what, "entries": held, "traced_bytes": traced, "rss_bytes": rss}


def _one(what: str, sessions: int, trace: bool) -> dict[str, Any]:
    """``what`` measured in a fresh interpreter (nothing left over from another)."""
    command = [sys.executable, "-m", "bench.memory", "--one", what, "--sessions", str(sessions)]
    if trace:
        command.append("--trace")
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--what", nargs="+", choices=WHAT, default=list(WHAT))
    parser.add_argument("--one", choices=WHAT, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(asyncio.run(_receive(args.one, args.sessions, args.trace))))
        return
    rows = []
    print(f"{'entry':14s} {'tracemalloc B':>14s} {'VmRSS B':>9s}  (per entry, {args.sessions:,})")
    for what in args.what:
        traced = _one(what, args.sessions, True)
        rss = _one(what, args.sessions, False)
        row = {
            "what": what,
            "entries": traced["entries"],
            "traced_per_entry": traced["traced_bytes"] / args.sessions,
            "rss_per_entry": rss["rss_bytes"] / args.sessions,
        }
        rows.append(row)
        print(f"{what:14s} {row['traced_per_entry']:14.0f} {row['rss_per_entry']:9.0f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
