"""Figure 1: requests/s of node1 in a 3-node cluster (async 8, sync 6) vs one node."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from bench.cluster.app import MODE_ENV
from bench.cluster.nodes import (
    SEND_OPTIONS,
    Node,
    Ports,
    get_json,
    log_in,
    start_cluster,
    start_uvicorn,
    stop,
    wait_members,
    wait_ready,
)
from bench.cluster.options import Options
from bench.cluster.profiler import PROFILE_DIR, py_spy, stop_py_spy
from bench.wrk import cookie_script, run_wrk

VARIANTS: Final = ("standalone", "async", "sync")


@dataclass
class Sample:
    variant: str
    round: int
    requests_per_s: float
    p99_ms: float
    errors: int


def _write_lua(node: Node, workdir: Path) -> Path:
    assert node.cookie is not None
    return cookie_script(workdir / f"{node.name}.lua", node.cookie, "bench/cluster")


def measure_throughput(options: Options, ports: Ports, workdir: Path) -> dict[str, Any]:
    print("\n[1/4] throughput: standalone vs 3-node cluster (async 8, sync 6), wrk on node1")
    clusters = {
        "standalone": [start_uvicorn("standalone", {MODE_ENV: "standalone"}, workdir)],
        "async": start_cluster("async", SEND_OPTIONS["async"], ports, workdir),
        "sync": start_cluster("sync", SEND_OPTIONS["sync"], ports, workdir),
    }
    try:
        for nodes in clusters.values():
            wait_ready(nodes)
        for variant in ("async", "sync"):
            wait_members(clusters[variant], 2)
        scripts = {}
        for variant, nodes in clusters.items():
            cookie = log_in(nodes[0])
            scripts[variant] = _write_lua(nodes[0], workdir)
            for peer in nodes[1:]:  # the write is served by every peer (misrouted, no rename)
                deadline = time.monotonic() + 5
                while get_json(peer.port, "/bench/counter", cookie)["counter"] != 1:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{peer.name} never saw node1's write")
                    time.sleep(0.02)
        if options.warmup > 0:
            for variant, nodes in clusters.items():
                run_wrk(
                    nodes[0].port, "/write", scripts[variant],
                    duration=options.warmup, connections=options.connections,
                )  # fmt: skip
        samples: list[Sample] = []
        total = options.rounds * len(VARIANTS)
        for round_ in range(options.rounds):
            order = VARIANTS[round_ % 3 :] + VARIANTS[: round_ % 3]  # rotate against drift
            for variant in order:
                spies = []
                if PROFILE_DIR and round_ == 0 and variant != "standalone":
                    spies = [py_spy(f"throughput-{variant}-{n.name}", n.process.pid)
                             for n in clusters[variant][:2]]  # fmt: skip
                rps, p99, errors = run_wrk(
                    clusters[variant][0].port, "/write", scripts[variant],
                    duration=options.duration, connections=options.connections,
                )  # fmt: skip
                for spy in spies:
                    if spy is not None:
                        stop_py_spy(*spy)
                samples.append(Sample(variant, round_, rps, p99, errors))
                print(
                    f"  [{len(samples):2d}/{total}] round {round_ + 1} {variant:10s} "
                    f"{rps:8.0f} req/s  p99 {p99:7.2f} ms"
                    + (f"  ({errors} errors!)" if errors else ""),
                    flush=True,
                )
        replication = {}
        for variant in ("async", "sync"):
            stats = [get_json(n.port, "/bench/stats") for n in clusters[variant]]
            replication[variant] = {
                "node1_deltas_sent": stats[0]["deltas_sent"],
                "node1_replication_failures": stats[0]["replication_failures"],
                "peers_deltas_received": [s["deltas_received"] for s in stats[1:]],
                "peers_counter": [
                    get_json(n.port, "/bench/counter", clusters[variant][0].cookie)["counter"]
                    for n in clusters[variant]
                ],
            }
    finally:
        for nodes in clusters.values():
            for node in nodes:
                stop(node.process)
    medians = {
        v: {
            "requests_per_s": statistics.median(
                s.requests_per_s for s in samples if s.variant == v
            ),
            "p99_ms": statistics.median(s.p99_ms for s in samples if s.variant == v),
            "errors": sum(s.errors for s in samples if s.variant == v),
        }
        for v in VARIANTS
    }
    base = medians["standalone"]["requests_per_s"]
    return {
        "samples": [asdict(s) for s in samples],
        "medians": medians,
        "ratio_async": medians["async"]["requests_per_s"] / base,
        "ratio_sync": medians["sync"]["requests_per_s"] / base,
        "replication": replication,
    }
