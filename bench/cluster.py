"""Cluster benchmark: what replication costs and how fast it is, on 127.0.0.1.

Run with ``.venv/bin/python bench/cluster.py`` (about 3 minutes); ``--quick`` for a
~60 s smoke run, ``--json PATH`` to keep the results, ``--help`` for the knobs.
Needs ``wrk`` (``apt-get install -y wrk``) and ``uvicorn[standard]`` in the venv.
Everything binds to 127.0.0.1 only; multicast heartbeats stay on the loopback
interface, on a random group port per cluster so that concurrent runs do not meet.

Four figures, each printed with its target and MET/MISS:

1. **Throughput of a 3-node cluster** (``GET /write``: a counter incremented in the
   session, so every request replicates one delta to two peers), async mode
   (``channel_send_options = 8``) and sync mode (6), as a ratio to one standalone
   node (``ClusterSessionMiddleware(app, secret_key=...)``, no config). Seven uvicorn
   processes (1 standalone + 2 clusters of 3, configured by ``CLUSTERSESSION_*``
   variables) run at once; wrk (1 thread) drives node1 of each in interleaved,
   rotated rounds and the medians are compared. Target: async >= 0.85x.
2. **Replication lag** at about 1,000 writes/s: from a write's response on node1
   (the ASGI ``send`` of its last body chunk) to the ``attribute_replaced`` listener
   on node2 seeing the new counter value. Measured twice: both nodes' middlewares
   in this process on one event loop (real channels over TCP), and node2 as a
   uvicorn subprocess (the listener records ``time.perf_counter()``, the system-wide
   ``CLOCK_MONOTONIC``, so both processes' stamps compare). Target: p99 < 5 ms.
3. **Deltas per second** node1 delivers to two peers: node1 (a ``DeltaManager`` in
   this process) commits one-change requests as fast as it can; node2 and node3
   (uvicorn subprocesses) count what they applied (``deltas_received``). The rate is
   deltas applied on *both* peers per second, the median of ``--rounds`` pushes to
   the same nodes. Target: 50,000/s.
4. **State transfer** of 100,000 sessions of ~1 KiB: node1 (a subprocess) creates
   them through ``DeltaManager.commit`` and reads each once through ``Session``, as
   its users' requests would; node2 (another subprocess) times
   ``await manager.start()`` until it holds them all (``send_all_sessions_size``
   1000). Target: < 5 s. Then the **resident memory** (``VmRSS`` of
   ``/proc/<pid>/status``, whole process: interpreter, Starlette, the middleware
   and the sessions) of each node holding them. Target: < 400 MB.

The machine of record has 2 cores: 3 nodes and wrk share them, so the cluster
ratios understate what a real farm (a node per host) gets.

This module is also the app (``uvicorn cluster:create_app --factory``, mode in
``BENCH_MODE``) and the state-transfer worker (``--worker hold|join``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import http.client
import io
import json
import os
import pstats
import random
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message
from wrk import (
    check_tools,
    free_port,
    parse_wrk,
    realistic_session,
    stop_group,
    uvicorn_command,
)

from clustersession import (
    AttributeEvent,
    ClusterConfig,
    ClusterSessionMiddleware,
    SessionListener,
)
from clustersession.sessions import codec
from clustersession.sessions.delta_manager import DeltaManager
from clustersession.sessions.ids import SessionIds
from clustersession.sessions.record import SessionDelta
from clustersession.sessions.session import Session

HOST: Final = "127.0.0.1"  # loopback only, always
SECRET: Final = "bench-cluster-secret-not-for-production"
MODE_ENV: Final = "BENCH_MODE"  # "standalone" | "cluster"
RECORD_ENV: Final = "BENCH_RECORD"  # "1": node2 records when counter values arrive
VARIANTS: Final = ("standalone", "async", "sync")
SEND_OPTIONS: Final = {"async": 8, "sync": 6}
NODES: Final = ("node1", "node2", "node3")
MCAST_PORTS: Final = (46000, 59000)
RECEIVER_PORTS: Final = (20000, 40000)

# The targets.
TARGET_ASYNC_RATIO: Final = 0.85
TARGET_LAG_P99_MS: Final = 5.0
TARGET_DELTAS_PER_S: Final = 50_000.0
TARGET_TRANSFER_S: Final = 5.0
TARGET_RSS_MB: Final = 400.0
LAG_WARMUP_S: Final = 0.5  # paced writes before the measured ones
FULL_SESSIONS: Final = 100_000  # the session count the last two targets are for

BENCH_DIR: Final = Path(__file__).resolve().parent
REPO_ROOT: Final = BENCH_DIR.parent
T = TypeVar("T")


# -- the app ----------------------------------------------------------------------


class ArrivalRecorder(SessionListener):
    """Records when each replicated ``counter`` value is applied on this node."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}

    def _seen(self, event: AttributeEvent) -> None:
        if event.remote and event.name == "counter" and isinstance(event.value, int):
            self.arrivals.setdefault(event.value, time.perf_counter())

    attribute_added = _seen
    attribute_replaced = _seen


def _routes(
    middleware: Callable[[], ClusterSessionMiddleware], recorder: ArrivalRecorder | None
) -> list[Route]:
    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("pong")  # readiness: leaves the session alone

    async def login(request: Request) -> PlainTextResponse:
        request.session.update(realistic_session())
        return PlainTextResponse("ok")

    async def write(request: Request) -> JSONResponse:
        session = request.session
        session["counter"] = session.get("counter", 0) + 1
        return JSONResponse({"user_id": session["user_id"], "counter": session["counter"]})

    async def read(request: Request) -> JSONResponse:
        return JSONResponse({"counter": request.session.get("counter")})

    async def stats(request: Request) -> Response:
        manager = middleware().manager
        body: dict[str, Any] = {"sessions": len(manager.store), "members": 0}
        if isinstance(manager, DeltaManager):
            body.update(manager.stats())
            body["members"] = len(manager.channel.members)
        return Response(json.dumps(body, default=str), media_type="application/json")

    async def arrivals(request: Request) -> JSONResponse:
        return JSONResponse(sorted(recorder.arrivals.items()) if recorder else [])

    return [
        Route("/ping", ping),
        Route("/login", login),
        Route("/write", write),
        Route("/read", read),
        Route("/bench/stats", stats),
        Route("/bench/arrivals", arrivals),
    ]


def build_app(config: ClusterConfig | None, *, record: bool = False) -> ClusterSessionMiddleware:
    """The benchmark app behind our middleware: standalone without ``config``."""
    recorder = ArrivalRecorder() if record else None
    holder: list[ClusterSessionMiddleware] = []
    app = Starlette(routes=_routes(lambda: holder[0], recorder))
    listeners = [recorder] if recorder else []
    if config is None:
        middleware = ClusterSessionMiddleware(app, secret_key=SECRET, listeners=listeners)
    else:
        middleware = ClusterSessionMiddleware(app, config=config, listeners=listeners)
    holder.append(middleware)
    return middleware


def create_app() -> ASGIApp:
    """uvicorn ``--factory`` entry: ``$BENCH_MODE`` standalone, or cluster from the env."""
    mode = os.environ.get(MODE_ENV, "")
    if mode not in ("standalone", "cluster"):
        raise RuntimeError(f"${MODE_ENV} must be 'standalone' or 'cluster', got {mode!r}")
    config = ClusterConfig.from_env() if mode == "cluster" else None
    return build_app(config, record=os.environ.get(RECORD_ENV) == "1")


# -- processes --------------------------------------------------------------------


_PROCESSES: list[subprocess.Popen[bytes]] = []


def _spawn(command: list[str], log: Path, env: dict[str, str], *, pipes: bool = False) -> Any:
    """Start a process in a session of its own (so its whole group can be killed)."""
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    _PROCESSES.append(process)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    stop_group(process)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    with contextlib.suppress(ValueError):
        _PROCESSES.remove(process)


def _finish(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Close its stdin (a worker's cue to stop), give it ``timeout`` s, then stop it."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    _stop(process)


def _stop_all() -> None:
    for process in list(reversed(_PROCESSES)):
        _stop(process)


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    # Only our CLUSTERSESSION_* settings: a stray one in the caller's env would
    # change the nodes (or be refused by the loader).
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERSESSION_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


class _Ports:
    """Random multicast group ports and receiver bases, never twice in one run."""

    def __init__(self) -> None:
        self._used: set[int] = set()

    def _pick(self, low: int, high: int, step: int) -> int:
        while True:
            port = random.randrange(low, high, step)
            if port not in self._used:
                self._used.add(port)
                return port

    def mcast(self) -> int:
        return self._pick(*MCAST_PORTS, 1)

    def receiver_base(self) -> int:
        return self._pick(*RECEIVER_PORTS, 10)  # node i listens on base + i


@dataclass
class Node:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    cookie: str | None = None  # the Cookie header value wrk sends


def _cluster_env(route: str, mcast_port: int, receiver_port: int, options: int) -> dict[str, str]:
    return {
        MODE_ENV: "cluster",
        "CLUSTERSESSION_DISTRIBUTABLE": "true",
        "CLUSTERSESSION_SECRET": SECRET,
        "CLUSTERSESSION_JVM_ROUTE": route,
        "CLUSTERSESSION_MEMBERSHIP__BIND": HOST,
        "CLUSTERSESSION_MEMBERSHIP__PORT": str(mcast_port),
        "CLUSTERSESSION_RECEIVER__ADDRESS": HOST,
        "CLUSTERSESSION_RECEIVER__PORT": str(receiver_port),
        "CLUSTERSESSION_CHANNEL_SEND_OPTIONS": str(options),
    }


def _start_uvicorn(name: str, env: dict[str, str], workdir: Path) -> Node:
    port = free_port()
    log = workdir / f"{name}.log"
    command = uvicorn_command("cluster:create_app", str(BENCH_DIR), port)
    return Node(name, port, _spawn(command, log, _child_env(env)), log)


def _start_cluster(
    prefix: str, options: int, ports: _Ports, workdir: Path, *, record: bool = False, count: int = 3
) -> list[Node]:
    mcast, base = ports.mcast(), ports.receiver_base()
    nodes = []
    for i, route in enumerate(NODES[:count]):
        env = _cluster_env(route, mcast, base + i, options)
        if record:
            env[RECORD_ENV] = "1"
        nodes.append(_start_uvicorn(f"{prefix}-{route}", env, workdir))
    return nodes


def _http(
    port: int, path: str, cookie: str | None = None, timeout: float = 10.0
) -> tuple[int, list[str], bytes]:
    """Status, ``Set-Cookie`` headers and body of one GET."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        body = response.read()
        return response.status, response.msg.get_all("Set-Cookie") or [], body
    finally:
        conn.close()


def _json(port: int, path: str, cookie: str | None = None) -> Any:
    status, _, body = _http(port, path, cookie)
    if status != 200:
        raise RuntimeError(f"GET {path} on port {port} answered {status}")
    return json.loads(body)


def _log_tail(node: Node) -> str:
    return node.log.read_text(errors="replace")[-3000:]


def _wait_ready(nodes: list[Node], deadline_s: float = 30.0) -> None:
    """Every node answers (uvicorn answers only after the lifespan's state transfer)."""
    deadline = time.monotonic() + deadline_s
    for node in nodes:
        while True:
            if node.process.poll() is not None:
                raise RuntimeError(
                    f"{node.name} exited with {node.process.returncode}:\n{_log_tail(node)}"
                )
            try:
                _http(node.port, "/ping", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{node.name} did not answer within {deadline_s:.0f} s:\n{_log_tail(node)}"
                    ) from None
                time.sleep(0.05)


def _wait_members(nodes: list[Node], count: int, deadline_s: float = 15.0) -> None:
    deadline = time.monotonic() + deadline_s
    for node in nodes:
        while _json(node.port, "/bench/stats")["members"] != count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not see {count} members:\n{_log_tail(node)}")
            time.sleep(0.05)


def _log_in(node: Node) -> str:
    status, set_cookies, _ = _http(node.port, "/login")
    values = [c.split(";", 1)[0] for c in set_cookies if c.startswith("session=")]
    if status != 200 or not values:
        raise RuntimeError(f"{node.name}: GET /login answered {status} without a session cookie")
    node.cookie = values[-1]
    status, _, body = _http(node.port, "/write", node.cookie)
    if status != 200 or json.loads(body)["counter"] != 1:
        raise RuntimeError(f"{node.name}: GET /write with the cookie answered {status} {body!r}")
    return node.cookie


def _rss_kb(pid: int | str = "self") -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


# -- 1. throughput ----------------------------------------------------------------


@dataclass
class Sample:
    variant: str
    round: int
    requests_per_s: float
    p99_ms: float
    errors: int


def _write_lua(node: Node, workdir: Path) -> Path:
    assert node.cookie is not None
    script = workdir / f"{node.name}.lua"
    # json.dumps gives a valid Lua string literal for this ASCII cookie value.
    script.write_text(
        "-- Generated by bench/cluster.py: replay one session's cookie on every request.\n"
        f'wrk.headers["Cookie"] = {json.dumps(node.cookie)}\n'
    )
    return script


def run_wrk(
    node: Node, script: Path, *, duration: float, connections: int
) -> tuple[float, float, int]:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
        "--latency", "-s", str(script), f"http://{HOST}:{node.port}/write",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 30, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr}{result.stdout}")
    return parse_wrk(result.stdout)


def measure_throughput(options: Options, ports: _Ports, workdir: Path) -> dict[str, Any]:
    print("\n[1/4] throughput: standalone vs 3-node cluster (async 8, sync 6), wrk on node1")
    clusters = {
        "standalone": [_start_uvicorn("standalone", {MODE_ENV: "standalone"}, workdir)],
        "async": _start_cluster("async", SEND_OPTIONS["async"], ports, workdir),
        "sync": _start_cluster("sync", SEND_OPTIONS["sync"], ports, workdir),
    }
    try:
        for nodes in clusters.values():
            _wait_ready(nodes)
        for variant in ("async", "sync"):
            _wait_members(clusters[variant], 2)
        scripts = {}
        for variant, nodes in clusters.items():
            cookie = _log_in(nodes[0])
            scripts[variant] = _write_lua(nodes[0], workdir)
            for peer in nodes[1:]:  # the write is served by every peer (misrouted, no rename)
                deadline = time.monotonic() + 5
                while _json(peer.port, "/read", cookie)["counter"] != 1:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{peer.name} never saw node1's write")
                    time.sleep(0.02)
        if options.warmup > 0:
            for variant, nodes in clusters.items():
                run_wrk(
                    nodes[0], scripts[variant],
                    duration=options.warmup, connections=options.connections,
                )  # fmt: skip
        samples: list[Sample] = []
        total = options.rounds * len(VARIANTS)
        for round_ in range(options.rounds):
            order = VARIANTS[round_ % 3 :] + VARIANTS[: round_ % 3]  # rotate against drift
            for variant in order:
                spies = []
                if _PROFILE_DIR and round_ == 0 and variant != "standalone":
                    spies = [_py_spy(f"throughput-{variant}-{n.name}", n.process.pid)
                             for n in clusters[variant][:2]]  # fmt: skip
                rps, p99, errors = run_wrk(
                    clusters[variant][0], scripts[variant],
                    duration=options.duration, connections=options.connections,
                )  # fmt: skip
                for spy in spies:
                    if spy is not None:
                        _stop_py_spy(*spy)
                samples.append(Sample(variant, round_, rps, p99, errors))
                print(
                    f"  [{len(samples):2d}/{total}] round {round_ + 1} {variant:10s} "
                    f"{rps:8.0f} req/s  p99 {p99:7.2f} ms"
                    + (f"  ({errors} errors!)" if errors else ""),
                    flush=True,
                )
        replication = {}
        for variant in ("async", "sync"):
            stats = [_json(n.port, "/bench/stats") for n in clusters[variant]]
            replication[variant] = {
                "node1_deltas_sent": stats[0]["deltas_sent"],
                "node1_replication_failures": stats[0]["replication_failures"],
                "peers_deltas_received": [s["deltas_received"] for s in stats[1:]],
                "peers_counter": [
                    _json(n.port, "/read", clusters[variant][0].cookie)["counter"]
                    for n in clusters[variant]
                ],
            }
    finally:
        for nodes in clusters.values():
            for node in nodes:
                _stop(node.process)
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


# -- 2. replication lag -----------------------------------------------------------


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


def loopback_config(route: str, mcast_port: int, receiver_port: int, **top: Any) -> ClusterConfig:
    """A node config whose multicast and receiver stay on 127.0.0.1 (as in the tests)."""
    base = ClusterConfig(secret=SECRET, distributable=True, jvm_route=route)
    membership = replace(base.membership, port=mcast_port, bind=HOST, address="228.0.0.4")
    receiver = replace(base.receiver, address=HOST, port=receiver_port)
    return replace(base, membership=membership, receiver=receiver, **top)


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _paced_writes(
    app: ClusterSessionMiddleware, cookie: str, rate: float, seconds: float
) -> tuple[dict[int, float], float]:
    """``GET /write`` at ``rate``/s; the time each counter value's response ended."""
    sent: dict[int, float] = {}
    warmup = int(rate * LAG_WARMUP_S)  # connections, caches: not counted
    count = int(rate * seconds) + warmup
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
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
    lags = sorted((arrived[v] - t) * 1000 for v, t in sent.items() if v in arrived)
    if not lags:
        raise RuntimeError("no write arrived on node2")
    first = min(sent.values())
    worst = max((v for v in sent if v in arrived), key=lambda v: arrived[v] - sent[v])
    return {
        "worst_at_s": sent[worst] - first,
        "over_5ms": sum(1 for lag in lags if lag >= TARGET_LAG_P99_MS),
        "writes": len(sent),
        "arrived": len(lags),
        "missing": len(sent) - len(lags),
        "writes_per_s": achieved,
        "p50_ms": _percentile(lags, 50),
        "p99_ms": _percentile(lags, 99),
        "max_ms": lags[-1],
    }


def _percentile(ordered: list[float], pct: float) -> float:
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


async def _lag_one_loop(options: Options, ports: _Ports) -> dict[str, Any]:
    mcast, base = ports.mcast(), ports.receiver_base()
    node1 = build_app(loopback_config("node1", mcast, base))
    node2 = build_app(loopback_config("node2", mcast, base + 1), record=True)
    managers = [node1.manager, node2.manager]
    try:
        await asyncio.gather(*(m.start() for m in managers))
        await _until(
            lambda: all(len(_delta(m).channel.members) == 1 for m in managers), 10, "members"
        )
        _, cookies, _ = await asgi_get(node1, "/login", None)
        cookie = cookies[0].split(";", 1)[0]
        token = cookie.split("=", 1)[1].split(".", 1)[0]
        await _until(lambda: token in node2.manager.store, 5, "the session on node2")
        sent, achieved = await _paced_writes(node1, cookie, options.lag_rate, options.lag_seconds)
        recorder = _recorder(node2)
        await _until(lambda: max(sent) in recorder.arrivals, 5, "the last write on node2")
        return _lag_summary(sent, recorder.arrivals, achieved)
    finally:
        for manager in reversed(managers):
            await manager.stop()


async def _lag_two_processes(options: Options, ports: _Ports, workdir: Path) -> dict[str, Any]:
    mcast, base = ports.mcast(), ports.receiver_base()
    env = _cluster_env("node2", mcast, base + 1, SEND_OPTIONS["async"])
    env[RECORD_ENV] = "1"
    peer = _start_uvicorn("lag-node2", env, workdir)
    node1 = build_app(loopback_config("node1", mcast, base))
    try:
        await asyncio.to_thread(_wait_ready, [peer])
        await node1.manager.start()
        await _until(lambda: len(_delta(node1.manager).channel.members) == 1, 10, "node2")
        await asyncio.to_thread(_wait_members, [peer], 1)
        _, cookies, _ = await asgi_get(node1, "/login", None)
        cookie = cookies[0].split(";", 1)[0]
        for _ in range(500):
            if (await asyncio.to_thread(_json, peer.port, "/read", cookie))["counter"] == 0:
                break
            await asyncio.sleep(0.01)
        sent, achieved = await _paced_writes(node1, cookie, options.lag_rate, options.lag_seconds)
        arrived: dict[int, float] = {}
        for _ in range(100):
            pairs = await asyncio.to_thread(_json, peer.port, "/bench/arrivals")
            arrived = {int(v): float(t) for v, t in pairs}
            if max(sent) in arrived:
                break
            await asyncio.sleep(0.05)
        return _lag_summary(sent, arrived, achieved)
    finally:
        await node1.manager.stop()
        _stop(peer.process)


def _delta(manager: object) -> DeltaManager:
    assert isinstance(manager, DeltaManager)
    return manager


def _recorder(app: ClusterSessionMiddleware) -> ArrivalRecorder:
    (recorder,) = app.manager.listeners
    assert isinstance(recorder, ArrivalRecorder)
    return recorder


def measure_lag(options: Options, ports: _Ports, workdir: Path) -> dict[str, Any]:
    print(
        f"\n[2/4] replication lag node1 -> node2 at {options.lag_rate:g} writes/s "
        f"for {options.lag_seconds:g} s (async mode)"
    )
    one_loop = _run(_lag_one_loop(options, ports), "lag-one-loop")
    print(f"  one process, one loop : {_lag_line(one_loop)}", flush=True)
    result: dict[str, Any] = {"one_loop": one_loop}
    clock = time.get_clock_info("perf_counter").implementation
    if "CLOCK_MONOTONIC" in clock:
        two = _run(_lag_two_processes(options, ports, workdir), "lag-two-processes")
        print(f"  node2 in a subprocess : {_lag_line(two)}", flush=True)
        result["two_processes"] = two
    else:
        print(f"  node2 in a subprocess : skipped (perf_counter is {clock}, not system-wide)")
    return result


def _lag_line(r: dict[str, Any]) -> str:
    missing = f", {r['missing']} missing!" if r["missing"] else ""
    return (
        f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.2f} ms  "
        f"({r['writes']} writes at {r['writes_per_s']:.0f}/s{missing}; "
        f"{r['over_5ms']} >= 5 ms, the worst {r['worst_at_s']:.2f} s in)"
    )


# -- 3. deltas per second ---------------------------------------------------------


async def _push_deltas(options: Options, ports: _Ports, workdir: Path) -> dict[str, Any]:
    mcast, base = ports.mcast(), ports.receiver_base()
    peers = [
        _start_uvicorn(f"deltas-{route}", _cluster_env(route, mcast, base + i + 1, 8), workdir)
        for i, route in enumerate(NODES[1:])
    ]
    manager = DeltaManager(loopback_config("node1", mcast, base))
    try:
        await asyncio.to_thread(_wait_ready, peers)
        await manager.start()
        await _until(lambda: len(manager.channel.members) == 2, 10, "both peers")
        await asyncio.to_thread(_wait_members, peers, 2)

        async def peer_stats() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = await asyncio.gather(
                *(asyncio.to_thread(_json, p.port, "/bench/stats") for p in peers)
            )
            return found

        ids = SessionIds(SECRET, "node1")
        tokens = [ids.new_token() for _ in range(1000)]
        now = time.time()
        for token in tokens:  # sessions the pushed writes update, as requests would
            await manager.commit(
                [SessionDelta(token, "node1", now, created_at=now, set=_counter(0))]
            )
        for _ in range(500):
            if all(s["sessions"] >= len(tokens) for s in await peer_stats()):
                break
            await asyncio.sleep(0.02)

        async def push(profile: bool) -> dict[str, Any]:
            before = [s["deltas_received"] for s in await peer_stats()]
            failures_before = manager.counters["replication_failures"]
            bytes_before = manager.channel.stats()["peers"]
            count = options.deltas
            dispatch = manager.channel.dispatch
            spies = []
            # py-spy samples this process too (cProfile distorts asyncio)
            if _PROFILE_DIR and profile:
                targets = [("deltas-node1", os.getpid())] + [(p.name, p.process.pid) for p in peers]
                spies = [_py_spy(name, pid) for name, pid in targets]
            cpu_before = [_cpu_seconds(p.process.pid) for p in peers] + [time.process_time()]
            started = time.perf_counter()
            for i in range(count):
                delta = SessionDelta(tokens[i % len(tokens)], "node1", now, set=_counter(i + 1))
                await manager.commit([delta])
                if i % 64 == 63:
                    await asyncio.sleep(0)  # let the dispatch worker send, as between requests
                    while dispatch.queued_bytes > 16 * 1024 * 1024:
                        await asyncio.sleep(0.001)  # bounded memory, not the max_queue_size path
            committed = time.perf_counter() - started
            while dispatch.queue_length:
                await asyncio.sleep(0.001)
            queue_drained = time.perf_counter() - started
            deadline = time.monotonic() + 120
            received = [0, 0]
            while True:
                stats = await peer_stats()
                received = [s["deltas_received"] - b for s, b in zip(stats, before, strict=True)]
                if min(received) >= count or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            cpu_after = [_cpu_seconds(p.process.pid) for p in peers] + [time.process_time()]
            busy = [(a - b) / elapsed for a, b in zip(cpu_after, cpu_before, strict=True)]
            for spy in spies:
                if spy is not None:
                    await asyncio.to_thread(_stop_py_spy, *spy)
            peers_after = manager.channel.stats()["peers"]
            sent_bytes = sum(p["bytes_sent"] for p in peers_after.values()) - sum(
                p["bytes_sent"] for p in bytes_before.values()
            )
            return {
                "deltas": count,
                "received_per_peer": received,
                "seconds": elapsed,
                "commit_seconds": committed,
                "queue_drained_seconds": queue_drained,
                "deltas_per_s": min(received) / elapsed,
                "applied_per_s_total": sum(received) / elapsed,
                "commits_per_s": count / committed,
                "frame_bytes_per_delta": sent_bytes / (2 * count),
                "replication_failures": manager.counters["replication_failures"] - failures_before,
                "cpu_busy": {"node1": busy[-1], "node2": busy[0], "node3": busy[1]},
            }

        # Rounds with the same nodes, the median reported: this machine is noisy.
        rounds = [await push(profile=i == 0) for i in range(options.rounds)]
        median = sorted(rounds, key=lambda r: r["deltas_per_s"])[len(rounds) // 2]
        return {**median, "rounds_deltas_per_s": [r["deltas_per_s"] for r in rounds]}
    finally:
        await manager.stop()
        for peer in peers:
            _stop(peer.process)


def _py_spy(name: str, pid: int) -> tuple[subprocess.Popen[bytes], Path] | None:
    """Sample a node's process with py-spy (if installed) until :func:`_stop_py_spy`."""
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if exe is None:
        print("  (py-spy not found: the peers are not profiled; pip install py-spy)")
        return None
    out = _PROFILE_DIR[0] / f"{name}.collapsed.txt"
    command = [exe, "record", "--pid", str(pid), "--rate", "250",
               "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    spy: subprocess.Popen[bytes] = _spawn(command, _PROFILE_DIR[0] / "py-spy.log", dict(os.environ))
    time.sleep(0.5)  # attached before the traffic starts
    return spy, out


def _stop_py_spy(spy: subprocess.Popen[bytes], out: Path) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    with contextlib.suppress(subprocess.TimeoutExpired):
        spy.wait(timeout=20)
    _stop(spy)
    if out.exists():
        _print_collapsed(out)


def _print_collapsed(path: Path, limit: int = 12) -> None:
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _counter(value: int) -> dict[str, bytes]:
    return {"counter": codec.encode(value)}


def measure_deltas(options: Options, ports: _Ports, workdir: Path) -> dict[str, Any]:
    print(
        f"\n[3/4] deltas/s: node1 (this process) commits {options.deltas:,} one-change "
        f"writes; node2, node3 (subprocesses) apply them; {options.rounds} round(s)"
    )
    result = _run(_push_deltas(options, ports, workdir), "deltas-node1", cprofile=False)
    each = ", ".join(f"{r:,.0f}" for r in result["rounds_deltas_per_s"])
    print(
        f"  rounds: {each} deltas/s; the median round: "
        f"{result['deltas_per_s']:,.0f} deltas/s applied on both peers "
        f"({result['applied_per_s_total']:,.0f} applications/s in all); node1 committed "
        f"{result['commits_per_s']:,.0f}/s, its queue drained after "
        f"{result['queue_drained_seconds']:.2f} s, peers done after {result['seconds']:.2f} s; "
        f"{result['frame_bytes_per_delta']:.0f} B/frame",
        flush=True,
    )
    cpu = result["cpu_busy"]
    print(
        f"  CPU busy while pushing: node1 {cpu['node1']:.0%}, node2 {cpu['node2']:.0%}, "
        f"node3 {cpu['node3']:.0%} (of one core each)",
        flush=True,
    )
    return result


# -- 4. state transfer and memory -------------------------------------------------


def _session_values(i: int) -> dict[str, Any]:
    """About 1 KiB of session data (msgpack), different for every session."""
    values = realistic_session()
    values["user_id"] = i
    values["email"] = f"user{i}@example.com"
    values["recently_viewed"] = [f"SKU-{(i * 7 + k) % 100000:06d}" for k in range(24)]
    values["preferences"] = {"theme": "dark", "currency": "EUR", "page_size": 50,
                             "note": f"{i:08d}" + "x" * 420}  # fmt: skip
    return values


def _encoded_size(values: dict[str, Any]) -> int:
    return sum(len(codec.encode(v)) for v in values.values())


async def _worker_hold(args: argparse.Namespace) -> None:
    """node1: create the sessions, read each once, report memory, serve the state transfer."""
    config = loopback_config("node1", args.mcast_port, args.receiver_port)
    app = build_app(config)
    manager = _delta(app.manager)
    await manager.start()
    baseline = _rss_kb()
    ids = SessionIds(SECRET, "node1")
    started = time.perf_counter()
    now = time.time()
    batch: list[SessionDelta] = []
    for i in range(args.sessions):
        encoded = {k: codec.encode(v) for k, v in _session_values(i).items()}
        batch.append(SessionDelta(ids.new_token(), "node1", now, created_at=now, set=encoded))
        if len(batch) == 1000:
            await manager.commit(batch)
            batch = []
            await asyncio.sleep(0)  # as between requests: queued work runs, garbage goes
    if batch:
        await manager.commit(batch)
    created = time.perf_counter() - started
    for record in list(manager.store):  # every session read once, as its user's requests do
        session = Session(ids, manager.lookup(record.token), default_max_inactive_interval=1800,
                          now=now)  # fmt: skip
        assert session["user_id"] is not None
    _emit({"event": "ready", "sessions": len(manager.store), "create_s": created,
           "baseline": baseline, "rss": _rss_kb()})  # fmt: skip
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline) == "report\n":
        _emit({"event": "report", "rss": _rss_kb(), "counters": manager.counters})
    await manager.stop()


async def _worker_join(args: argparse.Namespace) -> None:
    """node2: time ``manager.start()`` until every session is here."""
    config = loopback_config("node2", args.mcast_port, args.receiver_port)
    app = build_app(config)
    manager = _delta(app.manager)
    baseline = _rss_kb()
    first_member: list[float] = []

    async def watch() -> None:
        while not manager.channel.members:
            await asyncio.sleep(0.001)
        first_member.append(time.perf_counter())

    started = time.perf_counter()
    watcher = asyncio.get_running_loop().create_task(watch())
    await manager.start()
    returned = time.perf_counter()
    deadline = time.monotonic() + 15  # anti-entropy may finish a failed transfer
    while len(manager.store) < args.sessions and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    complete = time.perf_counter()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    _emit({
        "event": "joined", "sessions": len(manager.store), "start_s": returned - started,
        "complete_s": complete - started,
        "transfer_s": complete - first_member[0] if first_member else None,
        "state_transferred": manager.state_transferred, "baseline": baseline, "rss": _rss_kb(),
    })  # fmt: skip
    await manager.stop()


def _emit(document: dict[str, Any]) -> None:
    print(json.dumps(document), flush=True)


def _start_worker(
    role: str, sessions: int, mcast: int, receiver: int, workdir: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", role,
        "--sessions", str(sessions), "--mcast-port", str(mcast),
        "--receiver-port", str(receiver),
    ]  # fmt: skip
    if _PROFILE_DIR:
        command += ["--profile", str(_PROFILE_DIR[0])]
    process: subprocess.Popen[bytes] = _spawn(
        command, workdir / f"state-{role}.log", _child_env({}), pipes=True
    )
    return process


_LINE_BUFFERS: dict[int, bytearray] = {}


def _read_event(process: subprocess.Popen[bytes], log: Path, timeout: float) -> dict[str, Any]:
    """The next JSON line a worker prints, or an error with its log after ``timeout``."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffer = _LINE_BUFFERS.setdefault(fd, bytearray())
    deadline = time.monotonic() + timeout
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        readable = select.select([fd], [], [], max(remaining, 0))[0] if remaining > 0 else []
        chunk = os.read(fd, 65536) if readable else b""
        if not chunk:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"state-transfer worker failed or timed out:\n{tail}")
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    event: dict[str, Any] = json.loads(line)
    return event


def measure_state(options: Options, ports: _Ports, workdir: Path) -> dict[str, Any]:
    n = options.sessions
    size = _encoded_size(_session_values(n - 1))
    print(
        f"\n[4/4] state transfer: node1 (subprocess) holds {n:,} sessions of {size} B "
        "(encoded values); node2 (subprocess) joins"
    )
    mcast, base = ports.mcast(), ports.receiver_base()
    hold = _start_worker("hold", n, mcast, base, workdir)
    join: subprocess.Popen[bytes] | None = None
    try:
        ready = _read_event(hold, workdir / "state-hold.log", 300)
        print(
            f"  node1 created {ready['sessions']:,} sessions in {ready['create_s']:.2f} s; "
            f"RSS after reading each once {ready['rss']['VmRSS'] / 1024:.0f} MB "
            f"(before them {ready['baseline']['VmRSS'] / 1024:.0f} MB)",
            flush=True,
        )
        join = _start_worker("join", n, mcast, base + 1, workdir)
        joined = _read_event(join, workdir / "state-join.log", 180)
        assert hold.stdin is not None
        hold.stdin.write(b"report\n")
        hold.stdin.flush()
        served = _read_event(hold, workdir / "state-hold.log", 30)
        transfer = joined["transfer_s"]
        print(
            f"  node2 start() returned after {joined['start_s']:.2f} s, holding "
            f"{joined['sessions']:,} (all after {joined['complete_s']:.2f} s; "
            f"{transfer:.2f} s of it after node2 first saw node1); "
            f"node2 RSS {joined['rss']['VmRSS'] / 1024:.0f} MB",
            flush=True,
        )
    finally:
        for process in (join, hold):
            if process is not None:
                _finish(process)
    if _PROFILE_DIR:
        for role in ("hold", "join"):
            _print_profile(_PROFILE_DIR[0] / f"state-{role}.pstats")
    return {
        "sessions": n,
        "value_bytes_per_session": size,
        "node1_create_s": ready["create_s"],
        "start_s": joined["start_s"],
        "complete_s": joined["complete_s"],
        "transfer_after_member_s": transfer,
        "received": joined["sessions"],
        "state_transferred": joined["state_transferred"],
        "node1_rss_mb": ready["rss"]["VmRSS"] / 1024,
        "node1_rss_before_mb": ready["baseline"]["VmRSS"] / 1024,
        "node1_rss_after_serving_mb": served["rss"]["VmRSS"] / 1024,
        "node1_peak_mb": served["rss"]["VmHWM"] / 1024,
        "node2_rss_mb": joined["rss"]["VmRSS"] / 1024,
        "node2_peak_mb": joined["rss"]["VmHWM"] / 1024,
        "node2_rss_before_mb": joined["baseline"]["VmRSS"] / 1024,
    }


# -- the run ----------------------------------------------------------------------


@dataclass
class Options:
    duration: float
    rounds: int
    connections: int
    warmup: float
    lag_rate: float
    lag_seconds: float
    deltas: int
    sessions: int
    only: list[str] = field(default_factory=list)
    json_path: Path | None = None
    logs: Path | None = None
    strict: bool = False


SECTIONS: Final = ("throughput", "lag", "deltas", "state")


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


_PROFILE_DIR: list[Path] = []  # set by --profile


def _run(
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
    profiler = cProfile.Profile() if _PROFILE_DIR and cprofile else None
    with asyncio.Runner(loop_factory=factory) as runner:
        if profiler is None:
            return runner.run(main())
        profiler.enable()
        try:
            return runner.run(main())
        finally:
            profiler.disable()
            path = _PROFILE_DIR[0] / f"{name}.pstats"
            profiler.dump_stats(path)
            if show:
                _print_profile(path)


def _print_profile(path: Path, limit: int = 14) -> None:
    """The functions that took the most time themselves (cProfile's tottime)."""
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(limit)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    print(f"  profile {path} (top {limit} by own time):")
    for line in lines[start : start + limit + 1]:
        print("    " + line.replace(str(REPO_ROOT) + "/", ""))


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
            if held != FULL_SESSIONS:  # the sessions' part, extrapolated
                rss = before + (rss - before) * FULL_SESSIONS / max(held, 1)
                value = f"{rss:.0f} MB (from {held:,})"
            found.append(Verdict(f"RSS of {node} holding them", value,
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
        worker = _worker_hold if args.worker == "hold" else _worker_join
        if args.profile is not None:
            _PROFILE_DIR.append(args.profile)
        _run(worker(args), f"state-{args.worker}", show=False)
        return 0
    options = _options(args, parser)
    check_tools()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        _PROFILE_DIR.append(args.profile.resolve())
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Raise the open-files limit a little: 7 servers, wrk's 32 connections, channels.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    print(f"bench: cluster benchmark on {HOST} ({', '.join(options.only)})", flush=True)
    results: dict[str, Any] = {}
    ports = _Ports()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            workdir = Path(tmp) if options.logs is None else options.logs
            workdir.mkdir(parents=True, exist_ok=True)
            steps: dict[str, Callable[[Options, _Ports, Path], dict[str, Any]]] = {
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
        _stop_all()
    found = verdicts(results)
    _print_table(found, options)
    if _PROFILE_DIR:
        print("(profiled: the figures above are distorted by the profilers; profiles in "
              f"{_PROFILE_DIR[0]})")  # fmt: skip
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


if __name__ == "__main__":
    sys.exit(main())
