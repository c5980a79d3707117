"""CPU per write of each manager, in process: two nodes on one loop, no wrk, no balancer.

On a shared machine the scaling bench's requests/s swing with the load; this
measures what a write costs both nodes together (the writer's node and the one
that receives its copy): two nodes of :mod:`bench.scaling.app`'s routes on one
event loop, joined over loopback, ``--users`` users logged in on each, and
``--connections`` coroutines sending ``GET /write`` through the ASGI middleware
back to back. Both managers run with the same send options (``channel_send_options``
for delta, ``manager.map_send_options`` for backup) and ``backups = 1``, so with two
nodes both hold every session on both nodes::

    python -m bench.scaling.cpu                      # delta and backup, interleaved
    python -m bench.scaling.cpu --profile backup     # cProfile of one run to a file
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Route

from bench.cluster.lag import asgi_get
from bench.cluster.nodes import Ports, loopback_config
from bench.scaling.app import SECRET, Node
from clustersession import ClusterSessionMiddleware
from clustersession.config.sections import ManagerKind

KINDS: tuple[ManagerKind, ...] = ("delta", "backup")


def _node(
    kind: ManagerKind, route: str, mcast: int, port: int, options: int
) -> ClusterSessionMiddleware:
    config = loopback_config(route, mcast, port, channel_send_options=options, secret=SECRET)
    manager = replace(config.manager, kind=kind, backups=1, map_send_options=options)
    node = Node()
    app = Starlette(routes=[Route("/login", node.login), Route("/write", node.write)])
    node.middleware = ClusterSessionMiddleware(app, config=replace(config, manager=manager))
    return node.middleware


async def _until(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def measure(
    kind: ManagerKind, args: argparse.Namespace, profile: Path | None = None
) -> float:
    """Microseconds of CPU (this process: both nodes) per write."""
    ports = Ports()
    mcast, base = ports.mcast(), ports.receiver_base()
    apps = [_node(kind, f"node{i + 1}", mcast, base + i, args.send_options) for i in range(2)]
    await asyncio.gather(*(a.manager.start() for a in apps))
    try:
        await _until(lambda: all(a.manager.view().members for a in apps), "members")
        cookies = []
        for app in apps:
            for _ in range(args.users):
                _, set_cookies, _ = await asgi_get(app, "/login", None)
                cookies.append((app, set_cookies[0].split(";", 1)[0]))
        wanted = 2 * len(cookies)  # every session on both nodes (two nodes, one backup)
        await _until(lambda: sum(a.manager.view().sessions for a in apps) >= wanted, "the copies")
        count, stop = 0, False

        async def writer(app: ClusterSessionMiddleware, cookie: str) -> None:
            nonlocal count
            while not stop:
                status, _, _ = await asgi_get(app, "/write", cookie)
                if status != 200:
                    raise RuntimeError(f"/write answered {status}")
                count += 1
                await asyncio.sleep(0)  # as a server's requests arrive: through the loop

        profiler = cProfile.Profile() if profile else None
        per_user = max(1, args.connections // len(cookies))
        began = time.process_time()
        if profiler is not None:
            profiler.enable()
        tasks = [asyncio.create_task(writer(a, c)) for a, c in cookies * per_user]
        await asyncio.sleep(args.duration)
        stop = True
        await asyncio.gather(*tasks)
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        return (time.process_time() - began) / count * 1e6
    finally:
        for app in apps:
            await app.manager.stop()


async def main(args: argparse.Namespace) -> None:
    if args.profile:
        path = Path(f"{args.profile}.pstats")
        us = await measure(args.profile, args, path)
        print(f"{args.profile}: {us:.1f} us CPU per write; profile in {path}")
        return
    runs: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for i in range(args.rounds):
        for kind in KINDS if i % 2 == 0 else KINDS[::-1]:
            us = await measure(kind, args)
            runs[kind].append(us)
            print(f"round {i + 1} {kind:6s} {us:6.1f} us CPU per write (both nodes)")
    delta, backup = (statistics.median(runs[k]) for k in KINDS)
    print(
        f"median: delta {delta:.1f} us, backup {backup:.1f} us; backup/delta {backup / delta:.2f}"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling.cpu", description=__doc__)
    add = parser.add_argument
    add("--rounds", type=int, default=3, help="runs of each manager, interleaved [3]")
    add("--duration", type=float, default=4.0, help="seconds of writes per run [4]")
    add("--users", type=int, default=8, help="users logged in per node [8]")
    add("--connections", type=int, default=32, help="concurrent writers in all [32]")
    add("--send-options", type=int, default=8, help="both managers' send options [8]")
    add("--profile", choices=KINDS, help="one run of this manager under cProfile")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
