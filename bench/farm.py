"""``python -m bench.farm``: what a farm deploy costs the session traffic and a node's memory.

Two nodes on loopback, both with a ``[deployer]``: node1 is a middleware in this
process (driven through ASGI calls, as ``bench.cluster``'s lag figure), node2 a
uvicorn subprocess recording when each replicated counter value reaches its
``attribute_replaced`` listener.

1. Replication lag node1 -> node2 (``bench/cluster/lag.py``'s measure: end of
   node1's response to node2's listener) at a paced write rate: without a deploy,
   then while a ``--size-mib`` artifact is deployed (a) from node1, whose chunks
   share node1's connection to node2 with the session deltas, and (b) from the
   ``clustersession farm deploy`` command, a third process both nodes fetch from.
   Target: p99 < 20 ms during the deploy.
2. node2's RSS (``VmRSS``) before, during (the highest sample, every 50 ms) and
   after a ``--rss-size-mib`` deploy from the command. Target: within ±30 MB of
   before.

Everything binds to 127.0.0.1; every process is stopped and the work directory
removed on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.cluster.app import RECORD_ENV, build_app, delta_manager
from bench.cluster.lag import _lag_summary, _paced_writes, asgi_get
from bench.cluster.nodes import (
    SEND_OPTIONS,
    Node,
    Ports,
    cluster_env,
    get_json,
    loopback_config,
    start_uvicorn,
    stop_all,
    until,
    wait_members,
    wait_ready,
)
from bench.wrk import REPO_ROOT, child_env
from clustersession import ClusterSessionMiddleware
from clustersession.config import DeployerConfig
from clustersession.deploy import Entry
from clustersession.deploy.transfer import file_digest

TARGET_LAG_P99_MS: Final = 20.0
TARGET_RSS_DRIFT_MB: Final = 30.0
MiB: Final = 1024 * 1024
SAMPLE_S: Final = 0.05  # RSS sampling period during a deploy


@dataclass
class Pair:
    """node1 (here) and node2 (a subprocess), joined, with a replicated session."""

    node1: ClusterSessionMiddleware
    node2: Node
    cookie: str
    tool_env: dict[str, str]


async def _start_pair(ports: Ports, workdir: Path, transfer_rate: int) -> Pair:
    mcast, base = ports.mcast(), ports.receiver_base()
    env = cluster_env("node2", mcast, base + 1, SEND_OPTIONS["async"])
    env[RECORD_ENV] = "1"
    env["CLUSTERSESSION_DEPLOYER__DEPLOY_DIR"] = str(workdir / "node2" / "deploy")
    env["CLUSTERSESSION_DEPLOYER__TEMP_DIR"] = str(workdir / "node2" / "tmp")
    env["CLUSTERSESSION_DEPLOYER__TRANSFER_RATE"] = str(transfer_rate)
    node2 = start_uvicorn("farm-node2", env, workdir)
    deployer = DeployerConfig(
        deploy_dir=str(workdir / "node1" / "deploy"),
        temp_dir=str(workdir / "node1" / "tmp"),
        transfer_rate=transfer_rate,
    )
    node1 = build_app(loopback_config("node1", mcast, base + 0, deployer=deployer))
    await asyncio.to_thread(wait_ready, [node2])
    # The first request starts node1's manager and, with it, its farm deployer.
    _, cookies, _ = await asgi_get(node1, "/login", None)
    cookie = cookies[0].split(";", 1)[0]
    await until(lambda: len(delta_manager(node1).channel.members) == 1, 10, "node2")
    await asyncio.to_thread(wait_members, [node2], 1)
    await until(lambda: node1.farm is not None and node1.farm.converged.is_set(), 10, "farm")
    deadline = time.monotonic() + 10
    while (await asyncio.to_thread(get_json, node2.port, "/bench/counter", cookie))["counter"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the session never reached node2")
        await asyncio.sleep(0.01)
    # The command: node2's cluster settings, no deployer, a receiver port of its own.
    tool_env = {k: v for k, v in env.items() if k.startswith("CLUSTERSESSION_")}
    tool_env = {k: v for k, v in tool_env.items() if "DEPLOYER" not in k}
    tool_env["CLUSTERSESSION_RECEIVER__PORT"] = str(base + 2)
    return Pair(node1, node2, cookie, child_env(tool_env))


def _artifact(workdir: Path, name: str, size: int) -> Path:
    """A file of ``size`` random bytes (written in 4 MiB pieces, never held whole).

    Blocking, and slow for hundreds of MiB: called in a thread, so node1's loop
    keeps its heartbeats going meanwhile.
    """
    path = workdir / "src" / name
    path.parent.mkdir(exist_ok=True)
    with path.open("wb") as out:
        for offset in range(0, size, 4 * MiB):
            out.write(os.urandom(min(4 * MiB, size - offset)))
    return path


def _command(pair: Pair, path: Path) -> subprocess.Popen[bytes]:
    """``clustersession farm deploy PATH`` as a tool member of the pair's cluster."""
    argv = [sys.executable, "-m", "clustersession", "farm", "--min-members", "2",
            "--wait", "20", "--timeout", "600", "deploy", str(path)]  # fmt: skip
    return subprocess.Popen(
        argv, cwd=REPO_ROOT, env=pair.tool_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def held_since(sent: dict[int, float], arrived: dict[int, float]) -> dict[int, float]:
    """When node2 first held each counter value or a later one (the replication lag's end).

    The counter only grows, so holding value ``u`` means every write up to ``u``
    has reached node2. A value's own ``attribute_replaced`` is not always seen:
    a routine anti-entropy SYNC (sent with an ACK, straight to the socket)
    overtakes the DELTAs still waiting in node1's outbox and dispatch queue and
    brings the session as it is now; those DELTAs then arrive older than what
    node2 holds and change nothing. Measured: with anti-entropy switched off,
    0 of 26,272 writes went unseen (bench/README.md).
    """
    held: dict[int, float] = {}
    earliest = float("inf")
    for value in sorted(set(sent) | set(arrived), reverse=True):
        earliest = min(earliest, arrived.get(value, earliest))
        if earliest < float("inf"):
            held[value] = earliest
    return held


async def _node2_counters(pair: Pair) -> dict[str, int]:
    stats = await asyncio.to_thread(get_json, pair.node2.port, "/bench/stats")
    return {k: int(stats[k]) for k in ("deltas_received", "gaps_detected", "sessions_repaired")}


async def _lag_while(pair: Pair, rate: float, seconds: float, busy: Any) -> dict[str, Any]:
    """Paced writes on node1 (until ``busy()`` turns false, if given) and their lag on node2.

    Also whether any DELTA was lost: node1's ``deltas_sent`` against node2's
    ``deltas_received`` over the run, and node2's gaps in their numbering.
    """
    stop = None if busy is None else (lambda: not busy())
    sent_before = delta_manager(pair.node1).counters.deltas_sent
    before = await _node2_counters(pair)
    sent, achieved = await _paced_writes(pair.node1, pair.cookie, rate, seconds, stop=stop)
    arrived: dict[int, float] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pairs = await asyncio.to_thread(get_json, pair.node2.port, "/bench/arrivals")
        arrived = {int(v): float(t) for v, t in pairs}
        if max(sent) in arrived:
            break
        await asyncio.sleep(0.05)
    summary = _lag_summary(sent, held_since(sent, arrived), achieved)
    summary["superseded"] = sum(1 for v in sent if v not in arrived)
    after = await _node2_counters(pair)
    deltas_sent = delta_manager(pair.node1).counters.deltas_sent - sent_before
    summary["deltas_lost"] = deltas_sent - (after["deltas_received"] - before["deltas_received"])
    summary["gaps"] = after["gaps_detected"] - before["gaps_detected"]
    summary["repairs"] = after["sessions_repaired"] - before["sessions_repaired"]
    return summary


async def _measure_lag(pair: Pair, workdir: Path, size: int, rate: float, seconds: float) -> Any:
    results: dict[str, Any] = {"baseline": await _lag_while(pair, rate, seconds, None)}
    print(f"  no deploy          : {_line(results['baseline'])}", flush=True)

    farm = pair.node1.farm
    assert farm is not None
    path = await asyncio.to_thread(_artifact, workdir, "from-node1.bin", size)
    got, digest = await asyncio.to_thread(file_digest, path)
    started = time.perf_counter()
    task = asyncio.ensure_future(
        farm.deploy_everywhere(Entry(path.name, got, digest, time.time()), path)
    )
    during = await _lag_while(pair, rate, 3600, lambda: not task.done())
    outcome = await task
    during["deploy_s"] = time.perf_counter() - started
    during["deploy_ok"] = outcome.ok
    results["deploy_from_node1"] = during
    print(f"  deploy from node1  : {_line(during)}", flush=True)

    path = await asyncio.to_thread(_artifact, workdir, "from-command.bin", size)
    started = time.perf_counter()
    command = _command(pair, path)
    try:
        during = await _lag_while(pair, rate, 3600, lambda: command.poll() is None)
    finally:
        _, err = await asyncio.to_thread(command.communicate)
    during["deploy_s"] = time.perf_counter() - started
    during["deploy_ok"] = command.returncode == 0
    if command.returncode:
        print(err.decode(errors="replace"), file=sys.stderr)
    results["deploy_from_command"] = during
    print(f"  deploy from command: {_line(during)}", flush=True)
    return results


def _line(r: dict[str, Any]) -> str:
    deploy = f"; deploy {r['deploy_s']:.1f} s" if "deploy_s" in r else ""
    failed = "" if r.get("deploy_ok", True) else " FAILED"
    verdict = "MET" if r["p99_ms"] < TARGET_LAG_P99_MS else "MISS"
    return (
        f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.2f} ms  "
        f"({r['arrived']}/{r['writes']} writes at {r['writes_per_s']:.0f}/s{deploy}{failed}; "
        f"{r['superseded']} superseded by {r['repairs']} repair(s), "
        f"{r['deltas_lost']} delta(s) lost, {r['gaps']} gap(s)) "
        f"[{verdict} p99 < {TARGET_LAG_P99_MS:g} ms]"
    )


def rss_mb(pid: int) -> float:
    """``VmRSS`` of ``pid``, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for {pid}")


async def _steady_rss(pid: int, seconds: float = 1.0) -> float:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(rss_mb(pid))
        await asyncio.sleep(SAMPLE_S)
    return statistics.median(samples)


async def _measure_rss(pair: Pair, workdir: Path, size: int) -> dict[str, Any]:
    pid = pair.node2.process.pid  # uvicorn --workers 1 serves in this very process
    before = await _steady_rss(pid)
    path = await asyncio.to_thread(_artifact, workdir, "big.bin", size)
    started = time.perf_counter()
    command = _command(pair, path)
    peak = before
    while command.poll() is None:
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(SAMPLE_S)
    _, err = await asyncio.to_thread(command.communicate)
    elapsed = time.perf_counter() - started
    after = await _steady_rss(pid)
    if command.returncode:
        print(err.decode(errors="replace"), file=sys.stderr)
    result = {
        "size_mib": size // MiB,
        "before_mb": before,
        "peak_during_mb": peak,
        "after_mb": after,
        "deploy_s": elapsed,
        "deploy_ok": command.returncode == 0,
    }
    drift = max(abs(peak - before), abs(after - before))
    verdict = "MET" if drift <= TARGET_RSS_DRIFT_MB and result["deploy_ok"] else "MISS"
    print(
        f"  node2 RSS: before {before:.1f} MB, peak during {peak:.1f} MB, after {after:.1f} MB "
        f"(deploy {elapsed:.1f} s{'' if result['deploy_ok'] else ', FAILED'}) "
        f"[{verdict} ±{TARGET_RSS_DRIFT_MB:g} MB]",
        flush=True,
    )
    return result


async def _run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pair = await _start_pair(Ports(), workdir, args.transfer_rate)
    try:
        rate = f"{args.transfer_rate / MiB:g} MiB/s" if args.transfer_rate else "unlimited"
        print(
            f"[1/2] replication lag node1 -> node2 at {args.rate:g} writes/s, "
            f"{args.size_mib} MiB deploys, transfer_rate {rate}",
            flush=True,
        )
        lag = await _measure_lag(pair, workdir, args.size_mib * MiB, args.rate, args.seconds)
        print(f"[2/2] node2's RSS around a {args.rss_size_mib} MiB deploy", flush=True)
        rss = await _measure_rss(pair, workdir, args.rss_size_mib * MiB)
        return {"lag": lag, "rss": rss}
    finally:
        farm = pair.node1.farm
        if farm is not None:
            await farm.stop()
        await pair.node1.manager.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.farm", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=200, help="artifact of the lag runs")
    parser.add_argument("--rss-size-mib", type=int, default=500, help="artifact of the RSS run")
    parser.add_argument("--rate", type=float, default=1000.0, help="writes/s on node1")
    parser.add_argument("--seconds", type=float, default=5.0, help="the no-deploy lag run")
    parser.add_argument(
        "--transfer-rate",
        type=int,
        default=DeployerConfig().transfer_rate,
        help="deployer.transfer_rate of both nodes, bytes/s (0: unlimited; default: the default)",
    )
    parser.add_argument("--json", type=Path, help="write the figures there")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-farm-"))
    try:
        results = asyncio.run(_run(args, workdir))
    finally:
        stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
