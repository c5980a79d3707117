"""``--profile``: cProfile for in-process parts, py-spy for node processes, summaries.

Also :func:`run`, how every in-process part runs its coroutine (on uvloop, as
uvicorn does), since that is where cProfile is switched on.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bench.cluster.nodes import spawn, stop
from bench.wrk import REPO_ROOT

T = TypeVar("T")

PROFILE_DIR: list[Path] = []  # set by --profile: empty, or the one directory


def run(
    coroutine: Awaitable[T], name: str = "run", *, show: bool = True, cprofile: bool = True
) -> T:
    """Run on uvloop, as uvicorn does; under cProfile with ``--profile``."""

    async def main() -> T:
        return await coroutine

    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - the dev extra installs it
        factory = None
    profiler = cProfile.Profile() if PROFILE_DIR and cprofile else None
    with asyncio.Runner(loop_factory=factory) as runner:
        if profiler is None:
            return runner.run(main())
        profiler.enable()
        try:
            return runner.run(main())
        finally:
            profiler.disable()
            path = PROFILE_DIR[0] / f"{name}.pstats"
            profiler.dump_stats(path)
            if show:
                print_profile(path)


def print_profile(path: Path, limit: int = 14) -> None:
    """The functions that took the most time themselves (cProfile's tottime)."""
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(limit)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    print(f"  profile {path} (top {limit} by own time):")
    for line in lines[start : start + limit + 1]:
        print("    " + line.replace(str(REPO_ROOT) + "/", ""))


def py_spy(name: str, pid: int) -> tuple[subprocess.Popen[bytes], Path] | None:
    """Sample a node's process with py-spy (if installed) until :func:`stop_py_spy`."""
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if exe is None:
        print("  (py-spy not found: the peers are not profiled; pip install py-spy)")
        return None
    out = PROFILE_DIR[0] / f"{name}.collapsed.txt"
    command = [exe, "record", "--pid", str(pid), "--rate", "250",
               "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    spy: subprocess.Popen[bytes] = spawn(command, PROFILE_DIR[0] / "py-spy.log", dict(os.environ))
    time.sleep(0.5)  # attached before the traffic starts
    return spy, out


def stop_py_spy(spy: subprocess.Popen[bytes], out: Path) -> None:
    """Stop a sampler and print what it found."""
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    with contextlib.suppress(subprocess.TimeoutExpired):
        spy.wait(timeout=20)
    stop(spy)
    if out.exists():
        print_collapsed(out)


def print_collapsed(path: Path, limit: int = 12) -> None:
    """Own and inclusive time per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f.replace(str(REPO_ROOT) + "/", "") for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + int(count)
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + int(count)
        total += int(count)
    print(f"  py-spy {path} ({total} samples; Runner.run/_run_once own = idle or in C):")
    for title, table, only in (
        ("own time", own, ""),
        ("inclusive, clustersession only", inclusive, "clustersession/"),
    ):
        print(f"   top by {title}:")
        rows = sorted(((n, f) for f, n in table.items() if only in f), reverse=True)[:limit]
        for samples, frame in rows:
            print(f"    {100 * samples / max(total, 1):5.1f}%  {frame}")
