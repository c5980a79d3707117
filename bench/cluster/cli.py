"""The command line: arguments, the four parts in order, the verdicts table, ``--json``.

Also the entry of the state-transfer worker processes (``--worker hold|join``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.cluster.deltas import measure_deltas
from bench.cluster.lag import measure_lag
from bench.cluster.nodes import Ports, stop_all
from bench.cluster.options import (
    FULL_SESSIONS,
    SECTIONS,
    TARGET_ASYNC_RATIO,
    TARGET_DELTAS_PER_S,
    TARGET_LAG_P99_MS,
    TARGET_RSS_MB,
    TARGET_SYNC_RATIO,
    TARGET_TRANSFER_S,
    Options,
)
from bench.cluster.profiler import PROFILE_DIR, run
from bench.cluster.state import measure_state, worker_hold, worker_join
from bench.cluster.throughput import measure_throughput
from bench.wrk import HOST, check_tools


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="clustersession cluster benchmark on 127.0.0.1: 3-node throughput vs "
        "one node (wrk), replication lag, deltas/s to two peers, state transfer and memory.",
    )
    add = parser.add_argument
    add("--duration", type=float, default=8.0, help="seconds per wrk run [8]")
    add(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the three wrk variants, and of the deltas/s push [3]",
    )
    add("--connections", type=int, default=32, help="wrk connections [32]")
    add("--warmup", type=float, default=2.0, help="warm-up seconds per variant [2]")
    add("--lag-rate", type=float, default=1000.0, help="writes/s for the lag figure [1000]")
    add("--lag-seconds", type=float, default=5.0, help="seconds of paced writes [5]")
    add("--deltas", type=int, default=100_000, help="deltas pushed to two peers [100000]")
    add(
        "--sessions", type=int, default=FULL_SESSIONS,
        help="sessions to transfer [100000; --quick: 20000, targets scaled]",
    )  # fmt: skip
    add("--only", choices=SECTIONS, action="append", help="run only this part (repeatable)")
    add("--quick", action="store_true", help="smoke run under ~60 s (short runs, fewer deltas)")
    add("--json", type=Path, metavar="PATH", help="also write the results here")
    add("--logs", type=Path, metavar="DIR", help="keep the processes' logs here [a temp dir]")
    add("--strict", action="store_true", help="exit 1 if a target is missed")
    add(
        "--profile", type=Path, metavar="DIR",
        help="profile into DIR: cProfile for this process and the state-transfer nodes, "
        "py-spy (if installed) for node1 and a peer of the throughput and deltas/s runs; "
        "prints the top functions",
    )  # fmt: skip
    # Internal: the state-transfer node processes.
    add("--worker", choices=("hold", "join"), help=argparse.SUPPRESS)
    add("--mcast-port", type=int, help=argparse.SUPPRESS)
    add("--receiver-port", type=int, help=argparse.SUPPRESS)
    return parser


def _options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Options:
    if args.quick:
        args.duration, args.rounds, args.warmup = 2.0, 1, 1.0
        args.lag_seconds, args.deltas = 2.0, 30_000
        if args.sessions == FULL_SESSIONS:
            args.sessions = 20_000  # targets are then scaled (see verdicts)
    if min(args.duration, args.rounds, args.connections, args.lag_rate, args.lag_seconds) <= 0:
        parser.error("durations, rounds, connections and rates must be positive")
    if args.deltas < 1 or args.sessions < 1:
        parser.error("--deltas and --sessions must be at least 1")
    return Options(
        args.duration, args.rounds, args.connections, args.warmup, args.lag_rate,
        args.lag_seconds, args.deltas, args.sessions, args.only or list(SECTIONS),
        args.json, args.logs, args.strict,
    )  # fmt: skip


@dataclass
class Verdict:
    figure: str
    value: str
    target: str
    met: bool | None  # None: no target


def verdicts(results: MutableMapping[str, Any]) -> list[Verdict]:
    found: list[Verdict] = []
    if "throughput" in results:
        t = results["throughput"]
        m = t["medians"]
        found.append(Verdict("standalone node, req/s (wrk -> node1)",
                             f"{m['standalone']['requests_per_s']:,.0f}", "", None))  # fmt: skip
        found.append(Verdict("3-node async (8) / standalone, req/s",
                             f"{t['ratio_async']:.2f}x ({m['async']['requests_per_s']:,.0f})",
                             f">= {TARGET_ASYNC_RATIO}x",
                             t["ratio_async"] >= TARGET_ASYNC_RATIO))  # fmt: skip
        found.append(Verdict("3-node sync (6) / standalone, req/s",
                             f"{t['ratio_sync']:.2f}x ({m['sync']['requests_per_s']:,.0f})",
                             "", None))  # fmt: skip
        sync_vs_async = m["sync"]["requests_per_s"] / m["async"]["requests_per_s"]
        found.append(Verdict("3-node sync (6) / async (8), req/s", f"{sync_vs_async:.2f}x",
                             f">= {TARGET_SYNC_RATIO}x",
                             sync_vs_async >= TARGET_SYNC_RATIO))  # fmt: skip
    if "lag" in results:
        for key, label in (("one_loop", "one loop"), ("two_processes", "2 processes")):
            if key in results["lag"]:
                r = results["lag"][key]
                found.append(Verdict(
                    f"replication lag p50/p99/max ({label})",
                    f"{r['p50_ms']:.2f}/{r['p99_ms']:.2f}/{r['max_ms']:.2f} ms",
                    f"p99 < {TARGET_LAG_P99_MS:g} ms",
                    r["p99_ms"] < TARGET_LAG_P99_MS and not r["missing"],
                ))  # fmt: skip
    if "deltas" in results:
        d = results["deltas"]
        found.append(Verdict("deltas/s delivered to two peers", f"{d['deltas_per_s']:,.0f}",
                             f">= {TARGET_DELTAS_PER_S:,.0f}",
                             d["deltas_per_s"] >= TARGET_DELTAS_PER_S
                             and min(d["received_per_peer"]) >= d["deltas"]))  # fmt: skip
    if "state" in results:
        s = results["state"]
        n = s["sessions"]
        scale = n / FULL_SESSIONS
        limit = TARGET_TRANSFER_S * scale
        note = "" if n == FULL_SESSIONS else f", scaled to {n:,}"
        got = "" if s["received"] == n else f" (got {s['received']:,}!)"
        found.append(Verdict(f"state transfer of {n:,} sessions (start())",
                             f"{s['complete_s']:.2f} s{got}", f"< {limit:g} s{note}",
                             s["complete_s"] < limit and s["received"] == n))  # fmt: skip
        for node in ("node1", "node2"):
            rss, before = s[node + "_rss_mb"], s[node + "_rss_before_mb"]
            value = f"{rss:.0f} MB (peak {s[node + '_peak_mb']:.0f})"
            held = n if node == "node1" else s["received"]
            figure = f"RSS of {node} holding them"
            if held != FULL_SESSIONS:  # the sessions' part, extrapolated
                rss = before + (rss - before) * FULL_SESSIONS / max(held, 1)
                figure = f"RSS of {node}, extrapolated to {FULL_SESSIONS:,} sessions"
                value = f"{rss:.0f} MB (measured with {held:,})"
            found.append(Verdict(figure, value,
                                 f"< {TARGET_RSS_MB:g} MB", rss < TARGET_RSS_MB))  # fmt: skip
    return found


def _print_table(found: list[Verdict], options: Options) -> None:
    print(
        f"\nresults (wrk: medians of {options.rounds} x {options.duration:g} s, -t1 "
        f"-c{options.connections}; uvicorn 1 worker, uvloop, httptools; all on {HOST})\n"
    )
    width = max(len(v.figure) for v in found)
    print(f"{'figure':{width}s}  {'value':>28s}  {'target':>16s}  verdict")
    for v in found:
        verdict = "" if v.met is None else ("MET" if v.met else "MISS")
        print(f"{v.figure:{width}s}  {v.value:>28s}  {v.target:>16s}  {verdict}")
    print(
        f"\nnote: this machine has {os.cpu_count()} cores; 3 nodes + wrk (and the idle nodes "
        "of the other variants) share them, so the cluster ratios understate a real farm "
        "with a node per host. The one-loop lag shares one event loop between node1 and "
        "node2; the 2-process lag has node2 in its own uvicorn process. RSS is VmRSS of "
        "the node's whole process (interpreter, Starlette, middleware, channel, sessions)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.worker is not None:  # a state-transfer node process
        worker = worker_hold if args.worker == "hold" else worker_join
        if args.profile is not None:
            PROFILE_DIR.append(args.profile)
        coroutine = worker(args.sessions, args.mcast_port, args.receiver_port)
        run(coroutine, f"state-{args.worker}", show=False)
        return 0
    options = _options(args, parser)
    check_tools()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR.append(args.profile.resolve())
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Raise the open-files limit a little: 7 servers, wrk's 32 connections, channels.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    print(f"bench: cluster benchmark on {HOST} ({', '.join(options.only)})", flush=True)
    results: dict[str, Any] = {}
    ports = Ports()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            workdir = Path(tmp) if options.logs is None else options.logs
            workdir.mkdir(parents=True, exist_ok=True)
            steps: dict[str, Callable[[Options, Ports, Path], dict[str, Any]]] = {
                "throughput": measure_throughput,
                "lag": measure_lag,
                "deltas": measure_deltas,
                "state": measure_state,
            }
            for name, step in steps.items():
                if name in options.only:
                    results[name] = step(options, ports, workdir)
    except KeyboardInterrupt:
        print("\nbench: interrupted; every process stopped", file=sys.stderr)
        return 130
    finally:
        stop_all()
    found = verdicts(results)
    _print_table(found, options)
    if PROFILE_DIR:
        print("(profiled: the figures above are distorted by the profilers; profiles in "
              f"{PROFILE_DIR[0]})")  # fmt: skip
    print(f"(took {time.monotonic() - started:.0f} s)")
    if options.json_path is not None:
        document = {
            "options": {
                k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()
            },
            "results": results,
            "verdicts": [asdict(v) for v in found],
        }
        options.json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    missed = any(v.met is False for v in found)
    return 1 if options.strict and missed else 0


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop every process
