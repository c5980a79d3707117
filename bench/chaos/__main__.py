"""``python -m bench.chaos``: the chaos runs and their figures (``make chaos``).

Needs root (network namespaces) and nftables. Prints one JSON object per figure,
then a summary table; ``--json FILE`` keeps them; exit 1 if a figure lost anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from tests.cluster.network import unavailable_reason

from . import faults, scenarios
from .figures import Figure
from .scenarios import COMMAND
from .schedules import schedules

PARTS = ["kill", "kill-sync", "partition", "loss", "loss-nodelay", "slow-peer",
         "slow-peer-sync", "flood", "schedules"]  # fmt: skip


def plan(args: argparse.Namespace) -> dict[str, Callable[[], Figure]]:
    """Each part's run, long (``make chaos``) or ``--quick``."""
    q, n = args.quick, args.hosts
    return {
        "kill": lambda: scenarios.kill_restart(n, duration=15 if q else 60),
        "kill-sync": lambda: scenarios.kill_restart(n, duration=15 if q else 60, send_options=6),
        "partition": lambda: scenarios.partition_heal(n, duration=6 if q else 20),
        "loss": lambda: scenarios.loss_delay(n, duration=10 if q else 60),
        "loss-nodelay": lambda: scenarios.loss_delay(n, duration=10 if q else 60, delay_ms=0),
        "slow-peer": lambda: scenarios.slow_peer(n, stop_s=10),
        "slow-peer-sync": lambda: scenarios.slow_peer(n, stop_s=10, send_options=6),
        "flood": lambda: scenarios.flood(n, duration=10 if q else 30),
        "schedules": lambda: schedules(args.schedules or (500 if q else 5000)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"some of {','.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--hosts", type=int, default=3, help="node hosts (3-5)")
    parser.add_argument("--schedules", type=int, help="in-memory schedules (5000; --quick 500)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    chosen = args.only.split(",")
    unknown = set(chosen) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {sorted(unknown)}")
    needs_hosts = set(chosen) - {"schedules"}
    reason = unavailable_reason() or faults.available() if needs_hosts else None
    if reason:
        sys.exit(f"bench.chaos: {reason}")
    runs = plan(args)
    figures = []
    for part in chosen:
        figure = runs[part]()
        figure.scenario = part
        if part != "schedules":
            hosts = f" --hosts {args.hosts}" if args.hosts != 3 else ""
            figure.command = f"make chaos (or: {COMMAND} --only {part}{hosts})"
        figures.append(figure)
        print(json.dumps({**figure.__dict__, "ok": figure.ok}), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump([{**f.__dict__, "ok": f.ok} for f in figures], out, indent=2)
    print()
    for f in figures:
        conv = "-" if f.convergence_s is None else f"{f.convergence_s:.2f} s"
        lost = ", ".join(f"{k} {v}" for k, v in f.lost.items())
        print(f"{'ok  ' if f.ok else 'FAIL'} {f.scenario}: {lost}; converged in {conv}")
        for problem in f.problems:
            print(f"     {problem}")
    sys.exit(0 if all(f.ok for f in figures) else 1)


if __name__ == "__main__":
    main()
