"""The command line: the counts and managers in order, the table, targets, plots, ``--json``."""

from __future__ import annotations

import argparse
import json
import math
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from bench.cluster.nodes import Ports, stop_all
from bench.scaling.cluster import Cluster, time_ready, wait_until
from bench.scaling.load import run_load
from bench.scaling.plots import plot
from bench.wrk import REPO_ROOT, check_tools

KINDS: Final = ("delta", "backup")
# The memory target counts RSS above each node's idle base: what the sessions cost.
# The base (~39 MB: interpreter, uvicorn, Starlette, the package, the channel) is the
# same for both managers, and with 100,000 sessions of ~400 B it keeps total RSS
# above 1/3 whatever the proxies cost (bench/README.md); total RSS is printed beside.
TARGET_MEMORY: Final = 1 / 3  # backup / delta RSS above the idle base per node, 8 nodes
TARGET_BYTES: Final = 1 / 3  # backup / delta bytes per write, 8 nodes
TARGET_THROUGHPUT: Final = 0.8  # backup / delta req/s, 2 and 3 nodes
FIGURES: Final = {
    "requests_per_s": "writes/s",
    "rss_above_base_mb": "memory per node above the idle base",
    "rss_total_mb": "total RSS per node (idle base included; no target)",
    "bytes_per_write": "bytes per write",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="clustersession scaling curve on 127.0.0.1: delta vs backup manager, "
        "throughput, memory, bytes per write and time to ready per node count.",
    )
    add = parser.add_argument
    add("--nodes", type=int, nargs="+", default=[2, 3, 5, 8], help="node counts [2 3 5 8]")
    add("--sessions", type=int, default=100_000, help="sessions in the cluster [100000]")
    add("--duration", type=float, default=5.0, help="seconds per wrk run [5]")
    add("--rounds", type=int, default=2, help="wrk rounds per manager, interleaved [2]")
    add("--connections", type=int, default=32, help="wrk connections in all [32]")
    add("--users", type=int, default=8, help="users logged in per node for wrk [8]")
    add("--send-options", type=int, default=8, help="both managers' send options [8]")
    add("--backups", type=int, default=1, help="manager.backups of backup [1]")
    add(
        "--session-bytes",
        type=int,
        metavar="N",
        help="each session's values, about N bytes encoded [the realistic session, ~400 B]",
    )
    add("--only", choices=["memory"], help="memory: no wrk rounds (memory, ready and settle "
        "times only; no plots unless --plots)")  # fmt: skip
    add("--quick", action="store_true", help="smoke run: 2 and 3 nodes, 5,000 sessions, 2 s")
    add("--json", type=Path, metavar="PATH", help="also write the results here")
    add("--plots", type=Path, metavar="DIR", help="write the PNGs here [bench/]")
    add("--logs", type=Path, metavar="DIR", help="keep the nodes' logs here [a temp dir]")
    add("--settle", type=float, default=120.0, help="seconds a cluster may take to settle [120]")
    add("--strict", action="store_true", help="exit 1 if a target is missed")
    return parser


def _build(kind: str, count: int, args: argparse.Namespace, ports: Ports, workdir: Path) -> Any:
    """``count - 1`` nodes filled with the sessions, then node ``count`` joins; figures."""
    cluster = Cluster(kind, ports, workdir, send_options=args.send_options, backups=args.backups)
    cluster.label = f"{kind}-{count}"
    for _ in range(count - 1):
        cluster.spawn()
    for node in cluster.nodes:
        time_ready(node, 60)
    # Each node's own base: started, ready, no session yet (interpreter, uvicorn,
    # Starlette, the package, the channel). The joiner starts after the fill: its
    # base is taken as the others' mean (the same program, the same settings).
    idle = [s["rss_kb"] / 1024 for s in cluster.stats()]
    idle.append(statistics.mean(idle))
    fill_s, session_bytes = cluster.fill(args.sessions, args.session_bytes)
    _settle(cluster, args, "the fill")
    joiner = cluster.spawn()
    ready_s, join_s = time_ready(joiner, 180)
    settle_s = _settle(cluster, args, "the join")
    stats = cluster.stats()
    rss = [s["rss_kb"] / 1024 for s in stats]
    above = [after - base for after, base in zip(rss, idle, strict=True)]
    row = {
        "kind": kind,
        "nodes": count,
        "fill_s": fill_s,
        "session_bytes": session_bytes,  # encoded, mean
        "ready_s": ready_s,
        "join_s": join_s,
        "settle_after_ready_s": settle_s,
        "rss_total_mb": statistics.mean(rss),
        "rss_max_mb": max(rss),
        "rss_empty_mb": statistics.mean(idle),  # the nodes' mean base, before the sessions
        "rss_per_node_mb": rss,
        "rss_idle_per_node_mb": idle,  # the last: the joiner's, estimated (above)
        "rss_above_base_mb": statistics.mean(above),  # what the sessions take above the base
        "rss_above_base_per_node_mb": above,
        "held_per_node": [s["sessions"] for s in stats],
        "proxies_per_node": [(s["roles"] or {}).get("proxies", 0) for s in stats],
    }
    print(
        f"  {kind:6s} {count} nodes: filled in {fill_s:.1f} s; node{count} ready after "
        f"{ready_s:.2f} s ({join_s:.2f} s after its first answer), settled "
        f"{'never' if settle_s is None else f'{settle_s:.1f} s'} later; per node "
        f"{row['rss_above_base_mb']:.0f} MB above the idle base (total RSS "
        f"{row['rss_total_mb']:.0f} MB, max {row['rss_max_mb']:.0f}); held {row['held_per_node']}",
        flush=True,
    )
    if args.only != "memory":
        cluster.log_in(args.users)
    return cluster, row


def _settle(cluster: Cluster, args: argparse.Namespace, what: str) -> float | None:
    """Seconds until every copy is where it belongs; ``None`` (said) past ``--settle``."""
    try:
        return wait_until(cluster.settled(args.sessions), args.settle, what, cluster.nodes)
    except RuntimeError as error:
        print(f"  {cluster.kind}: NOT SETTLED after {what}: {error}", flush=True)
        return None


def _measure(count: int, order: tuple[str, ...], args: argparse.Namespace, ports: Ports,
             workdir: Path) -> list[dict[str, Any]]:  # fmt: skip
    print(f"\n{count} nodes ({' then '.join(order)})", flush=True)
    built: dict[str, Any] = {}
    try:
        for kind in order:
            built[kind] = _build(kind, count, args, ports, workdir)
            if args.only == "memory":
                built[kind][0].stop()  # measured: its memory is not the next cluster's
        samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in order}
        for round_ in range(0 if args.only == "memory" else args.rounds):
            for kind in order if round_ % 2 == 0 else tuple(reversed(order)):
                result = run_load(
                    built[kind][0], duration=args.duration, connections=args.connections
                )
                samples[kind].append(result)
                print(
                    f"  round {round_ + 1} {kind:6s} {result['requests_per_s']:8.0f} req/s  "
                    f"{result['bytes_per_write']:8.0f} B/write"
                    + (f"  ({result['errors']} errors!)" if result["errors"] else ""),
                    flush=True,
                )
    finally:
        for cluster, _ in built.values():
            cluster.stop()
    rows = []
    for kind in order:
        mine = samples[kind]
        row = built[kind][1]
        writes = sum(s["writes"] for s in mine)
        row.update(
            requests_per_s=statistics.median(s["requests_per_s"] for s in mine)
            if mine
            else float("nan"),
            requests_per_s_rounds=[s["requests_per_s"] for s in mine],
            errors=sum(s["errors"] for s in mine),
            bytes_per_write=sum(s["bytes_sent"] for s in mine) / writes
            if writes and not any(math.isnan(s["bytes_per_write"]) for s in mine)
            else float("nan"),
        )
        rows.append(row)
    return rows


def _ratio(rows: list[dict[str, Any]], count: int, key: str) -> float | None:
    found = {r["kind"]: r[key] for r in rows if r["nodes"] == count}
    if "delta" not in found or "backup" not in found or not found["delta"]:
        return None
    if any(math.isnan(value) for value in found.values()):
        return None  # not measured (see load.run): no verdict rather than a wrong one
    return float(found["backup"] / found["delta"])


def _verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    verdicts = []
    checks = [(8, "rss_above_base_mb", "<=", TARGET_MEMORY)]
    checks += [(8, "bytes_per_write", "<=", TARGET_BYTES)]
    checks += [(n, "requests_per_s", ">=", TARGET_THROUGHPUT) for n in (2, 3)]
    for count, key, op, target in checks:
        ratio = _ratio(rows, count, key)
        if ratio is None:
            continue
        met = ratio <= target if op == "<=" else ratio >= target
        verdict = {"nodes": count, "figure": key, "name": FIGURES[key], "ratio": ratio,
                   "target": f"{op} {target:.2f}", "met": met}  # fmt: skip
        if key == "rss_above_base_mb":
            verdict["total_rss_ratio"] = _ratio(rows, count, "rss_total_mb")  # beside, no target
        verdicts.append(verdict)
    return verdicts


def _print(rows: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> None:
    print(f"\n{'nodes':>5s} {'manager':7s} {'req/s':>8s} {'above base MB':>13s} "
          f"{'(total RSS MB':>13s} {'base MB)':>8s} {'B/session':>9s} {'B/write':>8s} "
          f"{'ready s':>8s} {'join s':>7s}")  # fmt: skip
    for r in sorted(rows, key=lambda r: (r["nodes"], r["kind"] != "delta")):
        print(
            f"{r['nodes']:5d} {r['kind']:7s} {r['requests_per_s']:8.0f} "
            f"{r['rss_above_base_mb']:13.0f} {r['rss_total_mb']:13.0f} {r['rss_empty_mb']:8.0f} "
            f"{r['session_bytes']:9.0f} {r['bytes_per_write']:8.0f} {r['ready_s']:8.2f} "
            f"{r['join_s']:7.2f}"
        )
    print("\nbackup / delta (memory: above the idle base, which both share; total RSS beside):")
    for count in sorted({r["nodes"] for r in rows}):
        said = [
            f"{FIGURES[key]} {ratio:.2f}x"
            for key in FIGURES
            if (ratio := _ratio(rows, count, key)) is not None
        ]
        print(f"  {count} nodes: {', '.join(said) or 'no pair measured'}")
    for v in verdicts:
        total = v.get("total_rss_ratio")
        beside = "" if total is None else f" (total RSS {total:.2f}x: printed only, no target)"
        print(f"  target {v['nodes']} nodes {v['name']}: {v['ratio']:.2f}x {v['target']}: "
              f"{'MET' if v['met'] else 'MISS'}{beside}")  # fmt: skip


def _save(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    if args.json:
        document = {"args": vars(args), "rows": rows, "verdicts": _verdicts(rows)}
        args.json.write_text(json.dumps(document, indent=2, default=str))


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends the run as Ctrl-C does: the ``finally`` stops every node and wrk.

    A second SIGTERM is ignored, so that it cannot cut that cleanup short (nodes
    left running, their ports held).
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.quick:
        args.nodes, args.sessions, args.duration, args.rounds = [2, 3], 5000, 2.0, 1
    check_tools()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    ports = Ports()
    logs = args.logs or Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    logs.mkdir(parents=True, exist_ok=True)
    size = "~400 B (realistic)" if args.session_bytes is None else f"{args.session_bytes} B"
    print(
        f"bench.scaling: {args.sessions:,} sessions of {size}, nodes {args.nodes}, "
        f"{'memory only, ' if args.only == 'memory' else ''}logs in {logs}"
    )
    began = time.monotonic()
    rows: list[dict[str, Any]] = []
    try:
        for i, count in enumerate(args.nodes):
            rows += _measure(count, KINDS if i % 2 == 0 else KINDS[::-1], args, ports, logs)
            _save(args, rows)  # what is measured so far, should a later count fail
    finally:
        stop_all()
    verdicts = _verdicts(rows)
    _print(rows, verdicts)
    # A partial run (memory only) keeps its hands off the README's PNGs unless asked.
    plots = args.plots or (None if args.only else REPO_ROOT / "bench")
    pngs = plot(rows, plots) if plots is not None else []
    print(f"\nplots: {', '.join(str(p) for p in pngs) or 'none'}; "
          f"{time.monotonic() - began:.0f} s in all")  # fmt: skip
    _save(args, rows)
    if args.strict and not all(v["met"] for v in verdicts):
        sys.exit(1)
