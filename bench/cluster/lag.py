"""Figure 2: replication lag node1 -> node2 at a paced write rate (async mode).

node1 is always this process's middleware, driven through ASGI calls; node2 is a
second middleware on the same loop, or a uvicorn subprocess.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from starlette.types import ASGIApp, Message

from bench.cluster.app import RECORD_ENV, build_app, delta_manager, recorder_of
from bench.cluster.nodes import (
    SEND_OPTIONS,
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
from bench.cluster.options import TARGET_LAG_P99_MS, Options
from bench.cluster.profiler import run
from bench.wrk import HOST
from clustersession import ClusterSessionMiddleware

LAG_WARMUP_S: Final = 0.5  # paced writes before the measured ones


async def asgi_get(app: ASGIApp, path: str, cookie: str | None) -> tuple[int, list[str], bytes]:
    """One GET through an ASGI app; ``Set-Cookie`` values and the body."""
    headers = [(b"host", b"bench")]
    if cookie:
        headers.append((b"cookie", cookie.encode("latin-1")))
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "headers": headers,
        "client": (HOST, 40000), "server": (HOST, 80),
    }  # fmt: skip
    status, body = 0, bytearray()
    cookies: list[str] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            cookies.extend(
                v.decode("latin-1") for k, v in message.get("headers", []) if k == b"set-cookie"
            )
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, cookies, bytes(body)


async def _paced_writes(
    app: ClusterSessionMiddleware,
    cookie: str,
    rate: float,
    seconds: float,
    *,
    stop: Callable[[], bool] | None = None,
) -> tuple[dict[int, float], float]:
    """``GET /write`` at ``rate``/s; the time each counter value's response ended.

    ``stop``: end early once it is true (bench.farm writes while a deploy runs).
    """
    sent: dict[int, float] = {}
    warmup = int(rate * LAG_WARMUP_S)  # connections, caches: not counted
    count = int(rate * seconds) + warmup
    start = time.perf_counter()
    for i in range(count):
        if stop is not None and i >= warmup and stop():
            count = i
            break
        delay = start + i / rate - time.perf_counter()
        # Behind schedule, still one loop iteration per write: a server's requests
        # arrive through the loop, and back-to-back in-process calls (which never
        # suspend) would keep node1's own deltas, heartbeats and chunks waiting
        # until the bench caught up (seconds on a starved machine).
        await asyncio.sleep(max(delay, 0.0))
        status, _, body = await asgi_get(app, "/write", cookie)
        # The middleware commits (and queues the delta) before the last body chunk,
        # so the response is complete here.
        done = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"/write answered {status}")
        if i >= warmup:
            sent[json.loads(body)["counter"]] = done
    return sent, count / (time.perf_counter() - start)


def _lag_summary(
    sent: dict[int, float], arrived: dict[int, float], achieved: float
) -> dict[str, Any]:
    """Lag of each write: until node2 first held its counter value or a later one.

    Writes that follow each other within one delta's gathering share that delta
    (node2 never sees the earlier value, only the later one, which includes it):
    such a write has arrived when the later value did, and is counted as
    ``coalesced``, not missing.
    """
    seen = _first_seen_at_least(arrived)
    reached = {v: seen[v] for v in sent if v in seen}
    lags = sorted((reached[v] - t) * 1000 for v, t in sent.items() if v in reached)
    if not lags:
        raise RuntimeError("no write arrived on node2")
    first = min(sent.values())
    worst = max(reached, key=lambda v: reached[v] - sent[v])
    return {
        "worst_at_s": sent[worst] - first,
        "over_5ms": sum(1 for lag in lags if lag >= TARGET_LAG_P99_MS),
        "writes": len(sent),
        "arrived": len(lags),
        "coalesced": sum(1 for v in reached if v not in arrived),
        "missing": len(sent) - len(lags),
        "writes_per_s": achieved,
        "p50_ms": _percentile(lags, 50),
        "p99_ms": _percentile(lags, 99),
        "max_ms": lags[-1],
    }


def _first_seen_at_least(arrived: dict[int, float]) -> dict[int, float]:
    """For every value up to the largest seen: when node2 first held it or a larger one."""
    if not arrived:
        return {}
    seen: dict[int, float] = {}
    earliest = float("inf")
    for value in range(max(arrived), min(min(arrived), 1) - 1, -1):
        earliest = min(earliest, arrived.get(value, earliest))
        seen[value] = earliest
    return seen


def _percentile(ordered: list[float], pct: float) -> float:
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


async def _lag_one_loop(options: Options, ports: Ports) -> dict[str, Any]:
    mcast, base = ports.mcast(), ports.receiver_base()
    node1 = build_app(loopback_config("node1", mcast, base))
    node2 = build_app(loopback_config("node2", mcast, base + 1), record=True)
    managers = [delta_manager(node1), delta_manager(node2)]
    try:
        await asyncio.gather(*(m.start() for m in managers))
        await until(lambda: all(len(m.channel.members) == 1 for m in managers), 10, "members")
        _, cookies, _ = await asgi_get(node1, "/login", None)
        cookie = cookies[0].split(";", 1)[0]
        token = cookie.split("=", 1)[1].split(".", 1)[0]
        await until(lambda: token in node2.manager.store, 5, "the session on node2")
        sent, achieved = await _paced_writes(node1, cookie, options.lag_rate, options.lag_seconds)
        recorder = recorder_of(node2)
        await until(lambda: max(sent) in recorder.arrivals, 5, "the last write on node2")
        return _lag_summary(sent, recorder.arrivals, achieved)
    finally:
        for manager in reversed(managers):
            await manager.stop()


async def _lag_two_processes(options: Options, ports: Ports, workdir: Path) -> dict[str, Any]:
    mcast, base = ports.mcast(), ports.receiver_base()
    env = cluster_env("node2", mcast, base + 1, SEND_OPTIONS["async"])
    env[RECORD_ENV] = "1"
    peer = start_uvicorn("lag-node2", env, workdir)
    node1 = build_app(loopback_config("node1", mcast, base))
    try:
        await asyncio.to_thread(wait_ready, [peer])
        await node1.manager.start()
        await until(lambda: len(delta_manager(node1).channel.members) == 1, 10, "node2")
        await asyncio.to_thread(wait_members, [peer], 1)
        _, cookies, _ = await asgi_get(node1, "/login", None)
        cookie = cookies[0].split(";", 1)[0]
        for _ in range(500):
            counter = await asyncio.to_thread(get_json, peer.port, "/bench/counter", cookie)
            if counter["counter"] == 0:
                break
            await asyncio.sleep(0.01)
        sent, achieved = await _paced_writes(node1, cookie, options.lag_rate, options.lag_seconds)
        arrived: dict[int, float] = {}
        for _ in range(100):
            pairs = await asyncio.to_thread(get_json, peer.port, "/bench/arrivals")
            arrived = {int(v): float(t) for v, t in pairs}
            if max(sent) in arrived:
                break
            await asyncio.sleep(0.05)
        return _lag_summary(sent, arrived, achieved)
    finally:
        await node1.manager.stop()
        stop(peer.process)


def measure_lag(options: Options, ports: Ports, workdir: Path) -> dict[str, Any]:
    print(
        f"\n[2/4] replication lag node1 -> node2 at {options.lag_rate:g} writes/s "
        f"for {options.lag_seconds:g} s (async mode)"
    )
    one_loop = run(_lag_one_loop(options, ports), "lag-one-loop")
    print(f"  one process, one loop : {_lag_line(one_loop)}", flush=True)
    result: dict[str, Any] = {"one_loop": one_loop}
    clock = time.get_clock_info("perf_counter").implementation
    if "CLOCK_MONOTONIC" in clock:
        two = run(_lag_two_processes(options, ports, workdir), "lag-two-processes")
        print(f"  node2 in a subprocess : {_lag_line(two)}", flush=True)
        result["two_processes"] = two
    else:
        print(f"  node2 in a subprocess : skipped (perf_counter is {clock}, not system-wide)")
    return result


def _lag_line(r: dict[str, Any]) -> str:
    missing = f", {r['missing']} missing!" if r["missing"] else ""
    if r.get("coalesced"):
        missing += f", {r['coalesced']} sharing a later write's delta"
    return (
        f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.2f} ms  "
        f"({r['writes']} writes at {r['writes_per_s']:.0f}/s{missing}; "
        f"{r['over_5ms']} >= 5 ms, the worst {r['worst_at_s']:.2f} s in)"
    )
