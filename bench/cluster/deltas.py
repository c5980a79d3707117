"""Figure 3: deltas/s node1 (a ``DeltaManager`` here) delivers to two uvicorn peers."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from bench.cluster.app import SECRET
from bench.cluster.nodes import (
    NODES,
    Ports,
    cluster_env,
    get_json,
    loopback_config,
    start_uvicorn,
    stop,
    until,
    wait_members,
    wait_ready,
)
from bench.cluster.options import Options
from bench.cluster.profiler import PROFILE_DIR, py_spy, run, stop_py_spy
from bench.wrk import cpu_seconds
from clustersession.sessions import codec
from clustersession.sessions.delta_manager import DeltaManager
from clustersession.sessions.ids import SessionIds
from clustersession.sessions.record import SessionDelta


async def _push_deltas(options: Options, ports: Ports, workdir: Path) -> dict[str, Any]:
    mcast, base = ports.mcast(), ports.receiver_base()
    peers = [
        start_uvicorn(f"deltas-{route}", cluster_env(route, mcast, base + i + 1, 8), workdir)
        for i, route in enumerate(NODES[1:])
    ]
    manager = DeltaManager(loopback_config("node1", mcast, base))
    try:
        await asyncio.to_thread(wait_ready, peers)
        await manager.start()
        await until(lambda: len(manager.channel.members) == 2, 10, "both peers")
        await asyncio.to_thread(wait_members, peers, 2)

        async def peer_stats() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = await asyncio.gather(
                *(asyncio.to_thread(get_json, p.port, "/bench/stats") for p in peers)
            )
            return found

        ids = SessionIds(SECRET, "node1")
        tokens = [ids.new_token() for _ in range(1000)]
        now = time.time()
        for token in tokens:  # sessions the pushed writes update, as requests would
            await manager.commit(
                [SessionDelta(token, "node1", now, created_at=now, set=_counter(0))]
            )
        for _ in range(500):
            if all(s["sessions"] >= len(tokens) for s in await peer_stats()):
                break
            await asyncio.sleep(0.02)

        async def push(profile: bool) -> dict[str, Any]:
            before = [s["deltas_received"] for s in await peer_stats()]
            failures_before = manager.counters.replication_failures
            bytes_before = manager.channel.stats().peers
            count = options.deltas
            dispatch = manager.channel.dispatch
            spies = []
            # py-spy samples this process too (cProfile distorts asyncio)
            if PROFILE_DIR and profile:
                targets = [("deltas-node1", os.getpid())] + [(p.name, p.process.pid) for p in peers]
                spies = [py_spy(name, pid) for name, pid in targets]
            cpu_before = [cpu_seconds(p.process.pid) for p in peers] + [time.process_time()]
            started = time.perf_counter()
            for i in range(count):
                delta = SessionDelta(tokens[i % len(tokens)], "node1", now, set=_counter(i + 1))
                await manager.commit([delta])
                if i % 64 == 63:
                    await asyncio.sleep(0)  # let the dispatch worker send, as between requests
                    while dispatch.queued_bytes > 16 * 1024 * 1024:
                        await asyncio.sleep(0.001)  # bounded memory, not the max_queue_size path
            committed = time.perf_counter() - started
            while dispatch.queue_length:
                await asyncio.sleep(0.001)
            queue_drained = time.perf_counter() - started
            deadline = time.monotonic() + 120
            received = [0, 0]
            while True:
                stats = await peer_stats()
                received = [s["deltas_received"] - b for s, b in zip(stats, before, strict=True)]
                if min(received) >= count or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            cpu_after = [cpu_seconds(p.process.pid) for p in peers] + [time.process_time()]
            busy = [(a - b) / elapsed for a, b in zip(cpu_after, cpu_before, strict=True)]
            for spy in spies:
                if spy is not None:
                    await asyncio.to_thread(stop_py_spy, *spy)
            peers_after = manager.channel.stats().peers
            sent_bytes = sum(p.bytes_sent for p in peers_after.values()) - sum(
                p.bytes_sent for p in bytes_before.values()
            )
            return {
                "deltas": count,
                "received_per_peer": received,
                "seconds": elapsed,
                "commit_seconds": committed,
                "queue_drained_seconds": queue_drained,
                "deltas_per_s": min(received) / elapsed,
                "applied_per_s_total": sum(received) / elapsed,
                "commits_per_s": count / committed,
                "frame_bytes_per_delta": sent_bytes / (2 * count),
                "replication_failures": manager.counters.replication_failures - failures_before,
                "cpu_busy": {"node1": busy[-1], "node2": busy[0], "node3": busy[1]},
            }

        # Rounds with the same nodes, the median reported: this machine is noisy.
        rounds = [await push(profile=i == 0) for i in range(options.rounds)]
        median = sorted(rounds, key=lambda r: r["deltas_per_s"])[len(rounds) // 2]
        return {**median, "rounds_deltas_per_s": [r["deltas_per_s"] for r in rounds]}
    finally:
        await manager.stop()
        for peer in peers:
            stop(peer.process)


def _counter(value: int) -> dict[str, bytes]:
    return {"counter": codec.encode(value)}


def measure_deltas(options: Options, ports: Ports, workdir: Path) -> dict[str, Any]:
    print(
        f"\n[3/4] deltas/s: node1 (this process) commits {options.deltas:,} one-change "
        f"writes; node2, node3 (subprocesses) apply them; {options.rounds} round(s)"
    )
    result = run(_push_deltas(options, ports, workdir), "deltas-node1", cprofile=False)
    each = ", ".join(f"{r:,.0f}" for r in result["rounds_deltas_per_s"])
    print(
        f"  rounds: {each} deltas/s; the median round: "
        f"{result['deltas_per_s']:,.0f} deltas/s applied on both peers "
        f"({result['applied_per_s_total']:,.0f} applications/s in all); node1 committed "
        f"{result['commits_per_s']:,.0f}/s, its queue drained after "
        f"{result['queue_drained_seconds']:.2f} s, peers done after {result['seconds']:.2f} s; "
        f"{result['frame_bytes_per_delta']:.0f} B/frame",
        flush=True,
    )
    cpu = result["cpu_busy"]
    print(
        f"  CPU busy while pushing: node1 {cpu['node1']:.0%}, node2 {cpu['node2']:.0%}, "
        f"node3 {cpu['node3']:.0%} (of one core each)",
        flush=True,
    )
    return result
