"""Every benchmark in one go: ``bench/RESULTS.md`` and its plots (``make bench-all``).

``.venv/bin/python -m bench.run_all`` runs, one after the other, each as its own
process with ``--json`` (so a part that fails is reported and the others still run):

* ASGI overhead (``bench.overhead --only asgi``): no middleware, Starlette's cookie
  session, starsessions + Redis, ours; reads, writes, and the session-size reads;
* WSGI overhead (``bench.overhead --only wsgi``): Flask's cookie session, Django's
  database and cache engines, ours (standalone and a 3-node Flask cluster);
* the cluster (``bench.cluster``): 3-node throughput with send options 8 and 6,
  replication lag at 1,000 writes/s, deltas/s, state transfer and RSS of 100,000
  sessions; then lag at 100 writes/s and the state transfer of 10,000 sessions;
* failover (``bench.failover``): SIGKILL of a node to its removal from every other
  node's members, and to the first 200 with the old cookie through HAProxy;

then writes ``bench/RESULTS.md`` (every figure with its target, met or missed, the
command that reproduces it alone, and the machine: cores, load, Python and package
versions) and PNG plots beside it. ``--quick`` shortens every part (a smoke run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.wrk import REPO_ROOT

OUT_DIR: Final = REPO_ROOT / "bench"
PACKAGES: Final = (
    "clustersession", "starlette", "uvicorn", "uvloop", "httptools", "msgpack",
    "starsessions", "redis", "flask", "django", "gunicorn",
)  # fmt: skip


@dataclass
class Part:
    """One benchmark process: its name, arguments (after ``python -m``) and JSON result."""

    name: str
    title: str
    args: list[str]
    result: dict[str, Any] | None = None
    seconds: float = 0.0
    error: str = ""

    @property
    def command(self) -> str:
        return ".venv/bin/python -m " + " ".join(self.args)


def parts(quick: bool) -> list[Part]:
    """What runs, in order; ``quick`` shortens each part."""
    wrk = ["--duration", "2", "--rounds", "1", "--warmup", "0.5"] if quick else [
        "--duration", "5", "--rounds", "2", "--warmup", "1"]  # fmt: skip
    wsgi = ["--duration", "2", "--rounds", "1", "--warmup", "0.5"] if quick else [
        "--duration", "4", "--rounds", "1", "--warmup", "1"]  # fmt: skip
    cluster = ["--quick"] if quick else []
    return [
        Part("asgi", "Per-request overhead, ASGI (uvicorn)",
             ["bench.overhead", "--only", "asgi", *wrk]),
        Part("wsgi", "Per-request overhead, WSGI (gunicorn)",
             ["bench.overhead", "--only", "wsgi", *wsgi]),
        Part("cluster", "Cluster: throughput (8, 6), lag at 1,000 writes/s, deltas/s, "
             "state transfer and RSS", ["bench.cluster", *cluster]),
        Part("lag100", "Replication lag at 100 writes/s",
             ["bench.cluster", "--only", "lag", "--lag-rate", "100", *cluster]),
        Part("state10k", "State transfer of 10,000 sessions",
             ["bench.cluster", "--only", "state", "--sessions", "10000"]),
        Part("failover", "Failover after SIGKILL of a node (3 nodes, HAProxy)",
             ["bench.failover", *(["--quick"] if quick else [])]),
    ]  # fmt: skip


def run(part: Part, workdir: Path) -> None:
    """Run one part, its output going to the terminal; keep its JSON result."""
    out = workdir / f"{part.name}.json"
    print(f"\n=== {part.title}: {part.command}", flush=True)
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", *part.args, "--json", str(out)], cwd=REPO_ROOT, check=False
    )
    part.seconds = time.monotonic() - started
    if out.exists():
        part.result = json.loads(out.read_text())
    if completed.returncode != 0 or part.result is None:
        part.error = f"exited with {completed.returncode}"


def machine() -> dict[str, Any]:
    """Cores, load, Python and package versions of this run."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "-"
    redis = (
        subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
        .stdout.split(" v=")[-1]
        .split()[0]
        if _has("redis-server")
        else "-"
    )
    return {
        "cores": os.cpu_count(),
        "load": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "redis-server": redis,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _has(tool: str) -> bool:
    from shutil import which

    return which(tool) is not None


# -- the report -----------------------------------------------------------------------


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("**met**" if met else "**missed**")


def _overhead_section(part: Part, label: str) -> list[str]:
    summary = part.result[label]["summary"] if part.result else {}
    lines = [
        "| scenario | row | req/s | p50 ms | p99 ms | server CPU µs/request |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario, result in summary.items():
        for row, m in result["medians"].items():
            p50 = f"{m['p50_ms']:.2f}" if "p50_ms" in m else "-"
            cpu = f"{m['cpu_us_per_request']:.1f}" if "cpu_us_per_request" in m else "-"
            lines.append(
                f"| {scenario} | {row} | {m['requests_per_s']:,.0f} | {p50} | {m['p99_ms']:.2f}"
                f" | {cpu} |"
            )
    lines += ["", "| scenario | ratio | value | target | verdict |", "|---|---|---:|---|---|"]
    for scenario, result in summary.items():
        for name, value, wanted, met in _ratios(result):
            lines.append(f"| {scenario} | {name} | {value:.2f}x | {wanted} | {_verdict(met)} |")
    return lines


def _ratios(result: dict[str, Any]) -> list[tuple[str, float, str, bool | None]]:
    """``(name, value, target, met)`` of one scenario, from either overhead section."""
    found: list[tuple[str, float, str, bool | None]] = []
    if "ratios" in result:  # the ASGI section
        targets = result.get("targets", {})
        for name, value in result["ratios"].items():
            target = targets.get(name)
            bound = "<=" if name.endswith("cost_vs_small") else ">="
            wanted = f"{bound} {target}x" if target is not None else ""
            found.append((name, value, wanted, result["targets_met"].get(name)))
    else:  # the WSGI section
        for name, t in result.get("targets", {}).items():
            found.append((name, t["ratio"], f">= {t['minimum']}x", t["met"]))
        for name, i in result.get("info", {}).items():
            found.append((name, i["ratio"], "", None))
    return found


def _cluster_section(part: Part) -> list[str]:
    verdicts = part.result.get("verdicts", []) if part.result else []
    lines = ["| figure | value | target | verdict |", "|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v['figure']} | {v['value']} | {v['target']} | {_verdict(v['met'])} |")
    return lines


def report(parts_run: list[Part], info: dict[str, Any], plots: list[str], total: float) -> str:
    """``RESULTS.md``'s text."""
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    load = ", ".join(f"{x:.2f}" for x in info["load"])
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench-all` (`.venv/bin/python -m bench.run_all`) on {info['date']}, "
        f"in {total / 60:.1f} min. Each section names the command that reproduces it alone; "
        "`bench/README.md` says how each figure is measured.",
        "",
        f"**Machine**: {info['cores']} cores, load average {load} (1, 5, 15 min) when the run "
        f"ended; Python {info['python']} on {info['platform']}; {packages}; "
        f"redis-server {info['redis-server']}.",
        "",
        "Every ratio compares rows measured side by side in the same run (interleaved "
        "rounds, medians); absolute requests/s depend on the machine and on what else "
        "runs on it.",
    ]
    for part in parts_run:
        lines += ["", f"## {part.title}", "", f"`{part.command}` ({part.seconds:.0f} s)", ""]
        if part.error:
            lines += [f"This part failed ({part.error}); see its output.", ""]
        if part.result is None:
            continue
        if part.name in ("asgi", "wsgi"):
            lines += _overhead_section(part, part.name)
        else:
            lines += _cluster_section(part)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def plot(parts_run: list[Part], out_dir: Path) -> list[str]:
    """Bar charts of requests/s per row and scenario; the file names written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib missing, no plots (pip install -e '.[dev]')", file=sys.stderr)
        return []
    written = []
    for part in parts_run:
        if part.name not in ("asgi", "wsgi") or part.result is None:
            continue
        summary = part.result[part.name]["summary"]
        scenarios = [s for s in summary if s in ("read", "write")]
        rows = list(summary[scenarios[0]]["medians"]) if scenarios else []
        figure, axes = plt.subplots(figsize=(8, 4))
        width = 0.8 / max(1, len(rows))
        for i, row in enumerate(rows):
            values = [summary[s]["medians"][row]["requests_per_s"] for s in scenarios]
            xs = [j + i * width for j in range(len(scenarios))]
            axes.bar(xs, values, width, label=row)
        axes.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(scenarios))])
        axes.set_xticklabels(scenarios)
        axes.set_ylabel("requests/s (median)")
        axes.set_title(part.title)
        axes.legend(fontsize="small")
        name = f"results-{part.name}.png"
        figure.tight_layout()
        figure.savefig(out_dir / name, dpi=100)
        plt.close(figure)
        written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark; write bench/RESULTS.md.")
    parser.add_argument("--quick", action="store_true", help="a smoke run of every part")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where RESULTS.md goes")
    args = parser.parse_args(argv)
    started = time.monotonic()
    todo = parts(args.quick)
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        for part in todo:
            run(part, Path(tmp))
    info = machine()
    plots = plot(todo, args.out)
    text = report(todo, info, plots, time.monotonic() - started)
    (args.out / "RESULTS.md").write_text(text)
    print(f"\nbench: wrote {args.out / 'RESULTS.md'} ({time.monotonic() - started:.0f} s)")
    return 1 if any(p.error for p in todo) else 0


if __name__ == "__main__":
    sys.exit(main())
