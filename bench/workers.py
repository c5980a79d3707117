"""What "every worker holds every session" costs: RSS of gunicorn workers holding sessions.

``python -m bench.workers`` (``--quick``: 1,000 sessions; ``--help`` for the knobs).

One gunicorn with three Flask workers (``bench.flask_app``, ``gunicorn -w 3 -k gthread
--threads 4``, as the WSGI rows of ``bench.overhead`` but three workers), twice:

* ``distributable``: ``CLUSTERSESSION_DISTRIBUTABLE=true``. Every worker process is a
  cluster member of its own (the manager starts per process, after the fork), so the
  three replicate to each other and each holds every session.
* ``local``: the same config without ``distributable``: each worker holds only the
  sessions whose requests it served (about a third).

N sessions are written through HTTP (``GET /login``, a new connection each, so the
kernel spreads them over the workers as it spreads real clients); then, once every
worker holds what it will hold, each worker's ``VmRSS`` is read from ``/proc`` and
compared with its RSS before the writes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from bench.cluster.nodes import Ports
from bench.cluster.state import rss_kb
from bench.wrk import http_get, realistic_session, stat_fields, stop_group
from bench.wsgi_overhead import (
    CLUSTER_SECRET,
    THREADS,
    Server,
    cluster_env,
    log_tail,
    start_gunicorn,
    stats,
    wait_ready,
)
from clustersession.sessions import codec

WORKERS: Final = 3
CONFIGS: Final = ("distributable", "local")


def worker_pids(master: int) -> list[int]:
    """The pids of ``master``'s children (gunicorn's workers), from ``/proc``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_fields(stat)
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def poll_workers(server: Server, pids: list[int], done: Any, deadline_s: float) -> dict[int, Any]:
    """``/bench/stats`` of every worker, polled until ``done(latest by pid)`` holds.

    Each poll is a new connection, which whichever worker accepts first answers,
    so polling long enough hears from all of them.
    """
    latest: dict[int, Any] = {}
    deadline = time.monotonic() + deadline_s
    while True:
        answer = stats(server)
        latest[answer["pid"]] = answer
        if set(latest) >= set(pids) and done(latest):
            return latest
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{server.name}: workers did not settle: {latest}\n{log_tail(server)}"
            )
        time.sleep(0.01)


def write_sessions(server: Server, count: int) -> None:
    """``count`` new sessions via ``GET /login``, each on a connection of its own."""

    def one(_: int) -> None:
        status, cookies, _body = http_get(server.port, "/login")
        if status != 200 or not cookies:
            raise RuntimeError(f"{server.name}: GET /login answered {status} without a cookie")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in pool.map(one, range(count)):
            pass


def measure(config: str, sessions: int, workdir: Path) -> dict[str, Any]:
    """Start the gunicorn, write ``sessions``, return each worker's sessions and RSS."""
    env = {"CLUSTERSESSION_SECRET": CLUSTER_SECRET}
    variant = "flask-local"
    if config == "distributable":
        ports = Ports()
        # One route for all three (one host); each worker binds the next free receiver
        # port from the base (auto_bind's default of 100 ports).
        env = cluster_env("web1", ports.mcast(), ports.receiver_base())
        variant = "flask-cluster"
    server = start_gunicorn(config, variant, workdir, env, workers=WORKERS)
    try:
        wait_ready(server)
        pids: list[int] = []
        deadline = time.monotonic() + 20
        while len(pids) < WORKERS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{config}: {WORKERS} workers did not start")
            time.sleep(0.1)
            pids = worker_pids(server.process.pid)
        members = WORKERS - 1 if config == "distributable" else 0
        # Every worker has started its manager (and sees the others) before the baseline.
        poll_workers(server, pids, lambda s: all(v["members"] == members for v in s.values()), 60)
        before = {pid: rss_kb(pid)["VmRSS"] for pid in pids}
        started = time.perf_counter()
        write_sessions(server, sessions)
        written_s = time.perf_counter() - started

        def settled(latest: dict[int, Any]) -> bool:
            held = [v["sessions"] for v in latest.values()]
            if config == "distributable":
                return all(n == sessions for n in held)
            return bool(sum(held) == sessions)  # nothing more is written: counts are final

        latest = poll_workers(server, pids, settled, 120)
        workers = []
        for pid in pids:
            after = rss_kb(pid)["VmRSS"]
            held = latest[pid]["sessions"]
            grown_mb = (after - before[pid]) / 1024
            workers.append(
                {
                    "pid": pid,
                    "sessions": held,
                    "rss_before_mb": before[pid] / 1024,
                    "rss_mb": after / 1024,
                    "grown_mb": grown_mb,
                    "mb_per_1000": grown_mb / held * 1000 if held else None,
                }
            )
        return {"config": config, "written_s": written_s, "workers": workers}
    finally:
        stop_group(server.process)


def print_result(result: dict[str, Any], sessions: int) -> None:
    workers = result["workers"]
    total_mb = sum(w["rss_mb"] for w in workers)
    grown_mb = sum(w["grown_mb"] for w in workers)
    print(
        f"\n{result['config']}: {sessions:,} sessions written in {result['written_s']:.1f} s; "
        f"{WORKERS} workers: RSS {total_mb:.1f} MB in all, grown by {grown_mb:.1f} MB "
        f"({grown_mb / sessions * 1000:.2f} MB per 1,000 sessions written)"
    )
    print(f"  {'pid':>7s} {'sessions':>9s} {'RSS before':>11s} {'RSS after':>10s} "
          f"{'grown':>8s} {'MB/1,000 held':>14s}")  # fmt: skip
    for w in workers:
        per = "-" if w["mb_per_1000"] is None else f"{w['mb_per_1000']:.2f}"
        print(
            f"  {w['pid']:7d} {w['sessions']:9,d} {w['rss_before_mb']:9.1f}MB "
            f"{w['rss_mb']:8.1f}MB {w['grown_mb']:6.1f}MB {per:>14s}"
        )


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop the servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="RSS of 3 gunicorn Flask workers holding N sessions, "
        "distributable (each holds all) vs local (each holds its own)."
    )
    parser.add_argument("--sessions", type=int, default=10_000, help="sessions written [10000]")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 sessions")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    args = parser.parse_args(argv)
    sessions = 1_000 if args.quick else args.sessions
    if sessions < 1:
        parser.error("--sessions must be at least 1")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    size = sum(len(codec.encode(v)) for v in realistic_session().values())
    print(
        f"bench.workers: {sessions:,} sessions of {size} B (msgpack values), gunicorn -w "
        f"{WORKERS} -k gthread --threads {THREADS}, Flask + ClusterSessionInterface",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        for config in CONFIGS:
            results.append(measure(config, sessions, Path(tmp)))
            print_result(results[-1], sessions)
    if args.json is not None:
        args.json.write_text(json.dumps({"sessions": sessions, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
