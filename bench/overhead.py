"""Session overhead: ASGI (uvicorn) and WSGI (gunicorn) sessions vs ours, driven by wrk.

Run with ``make bench`` (``.venv/bin/python -m bench.overhead``); ``--quick`` for a
~1.5 min smoke run, ``--only asgi|wsgi`` for one section, ``--help`` for the knobs.
Needs ``wrk`` (``apt-get install -y wrk``), ``uvicorn[standard]`` (uvloop + httptools)
and ``gunicorn`` in the venv (all in the ``dev`` extra).

The WSGI section (Flask's and Django's own sessions vs ours, standalone and in a
3-node cluster) is ``bench.wsgi_overhead``; what follows is the ASGI section.

The same tiny Starlette app is served three ways, each by its own uvicorn process
(one worker, uvloop, httptools) on 127.0.0.1:

* ``none``: no session middleware; the endpoints use a plain module-level dict
  holding the same data, so the app does the same work minus the session machinery.
* ``starlette``: ``starlette.middleware.sessions.SessionMiddleware`` (the whole
  session signed into the cookie).
* ``starsessions``: starsessions' ``SessionMiddleware`` + ``SessionAutoloadMiddleware``
  with a ``RedisStore`` on a real ``redis-server`` the bench starts on loopback and
  stops (skipped, saying so, when ``redis-server`` or starsessions is missing:
  ``make bench-deps``).
* ``ours``: ``ClusterSessionMiddleware(app, secret_key=...)``, one node, no config
  (the cookie holds a signed id, the data stays in the server's memory).

Scenarios: ``read`` (``GET /read`` reads a few session keys: the common case) and
``write`` (``GET /write`` increments a counter in the session). Then, for ours
only, session size: ``read-small`` and ``read-large`` read three keys of a
5-key session and of a 200-key, 64 KiB one. wrk runs with one
thread (the machine has two cores: one for wrk, one for the server), variants are
interleaved and repeated in rounds, and the median of each is reported.

This module is also the app: the servers run ``uvicorn bench.overhead:create_app
--factory`` with the variant in ``BENCH_VARIANT``; its endpoints are ``bench.app``'s.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request

from bench.app import session_routes
from bench.wrk import (
    HOST,
    REPO_ROOT,
    Sample,
    check_tools,
    child_env,
    cookie_script,
    free_port,
    http_get,
    print_medians,
    realistic_session,
    run_wrk,
    sample,
    stop_group,
    uvicorn_command,
)
from bench.wrk import medians as wrk_medians

VARIANTS: Final = ("none", "starlette", "starsessions", "ours")
SCENARIOS: Final = ("read", "write")
SIZE_SCENARIOS: Final = ("read-small", "read-large")
SECRET: Final = "bench-secret-not-for-production"
VARIANT_ENV: Final = "BENCH_VARIANT"
REDIS_ENV: Final = "BENCH_REDIS_URL"
# Issue 11's targets for ours, as throughput ratios (None: no target).
TARGETS: Final[dict[str, dict[str, float | None]]] = {
    "read": {"rps_vs_none": 0.80, "rps_vs_starlette": None},
    "write": {"rps_vs_none": 0.65, "rps_vs_starlette": 1.6},
}
# A read of a 200-key, 64 KiB session costs at most this times a read of a 5-key one.
TARGET_SIZE_COST: Final = 1.5


# -- the app ----------------------------------------------------------------------


def create_app() -> Starlette:
    """The app for the variant named in ``$BENCH_VARIANT`` (uvicorn ``--factory``)."""
    variant = os.environ.get(VARIANT_ENV, "")
    if variant not in VARIANTS:
        raise RuntimeError(f"${VARIANT_ENV} must be one of {VARIANTS}, got {variant!r}")

    session_of: Callable[[Request], MutableMapping[str, Any]]
    middleware: list[Middleware] = []
    if variant == "none":
        shared = realistic_session()

        def session_of(request: Request) -> MutableMapping[str, Any]:
            return shared

    else:

        def session_of(request: Request) -> MutableMapping[str, Any]:
            return request.session

        if variant == "starlette":
            from starlette.middleware.sessions import SessionMiddleware

            middleware.append(Middleware(SessionMiddleware, secret_key=SECRET))
        elif variant == "starsessions":
            from starsessions import SessionAutoloadMiddleware
            from starsessions import SessionMiddleware as StarSessions
            from starsessions.stores.redis import RedisStore

            store = RedisStore(os.environ[REDIS_ENV])
            middleware.append(
                Middleware(StarSessions, store=store, cookie_https_only=False, lifetime=3600)
            )
            middleware.append(Middleware(SessionAutoloadMiddleware))
        else:
            # Imported here so the parent process never needs the package to import.
            from clustersession import ClusterSessionMiddleware

            middleware.append(Middleware(ClusterSessionMiddleware, secret_key=SECRET))

    return Starlette(routes=session_routes(session_of), middleware=middleware)


# -- servers ----------------------------------------------------------------------


@dataclass
class Server:
    variant: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    cookie: str | None = None  # the ``Cookie`` header value wrk sends


def starsessions_missing() -> str | None:
    """Why the starsessions row cannot run here, or ``None``."""
    if shutil.which("redis-server") is None:
        return "redis-server not found (make bench-deps)"
    if (
        importlib.util.find_spec("starsessions") is None
        or importlib.util.find_spec("redis") is None
    ):
        return "starsessions or redis missing (pip install -e '.[dev]')"
    return None


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A throwaway ``redis-server`` on loopback (no persistence): its URL; stopped after."""
    port = free_port()
    log = workdir / "redis.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            ["redis-server", "--bind", HOST, "--port", str(port), "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start:\n" + log.read_text()[-2000:])
            time.sleep(0.05)
        yield f"redis://{HOST}:{port}/0"
    finally:
        stop_group(process)


def _start_server(variant: str, workdir: Path, redis_url: str | None = None) -> Server:
    port = free_port()
    log = workdir / f"server-{variant}.log"
    env = child_env({VARIANT_ENV: variant, **({REDIS_ENV: redis_url} if redis_url else {})})
    command = uvicorn_command("bench.overhead:create_app", port)
    with log.open("wb") as log_file:
        # A session of its own, so the whole process group can be killed at the end
        # and a Ctrl-C in the terminal reaches only us (we then stop the servers).
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    return Server(variant, port, process, log)


def _wait_ready(server: Server, deadline_s: float = 20.0) -> None:
    """Poll until the server answers (a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + deadline_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.variant} server exited with {server.process.returncode}:\n"
                + server.log.read_text(errors="replace")[-3000:]
            )
        try:
            http_get(server.port, "/ping", timeout=5)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{server.variant} server did not answer on port {server.port} "
                    f"within {deadline_s:.0f} s:\n" + server.log.read_text(errors="replace")[-3000:]
                ) from None
            time.sleep(0.05)


def _log_in(server: Server, path: str = "/login", check: str = "/read") -> None:
    """Get the session cookie wrk will replay; checks the session actually works."""
    status, set_cookies, _ = http_get(server.port, path, timeout=5)
    if status != 200:
        raise RuntimeError(f"{server.variant}: GET /login answered {status}")
    if server.variant == "none":
        return  # no middleware, no cookie: wrk sends none
    values = [c.split(";", 1)[0] for c in set_cookies if c.startswith("session=")]
    if not values:
        raise RuntimeError(f"{server.variant}: GET /login set no session cookie")
    server.cookie = values[-1]
    # The session must come back with the cookie, or we would time an empty session.
    status, _, _ = http_get(server.port, check, server.cookie, timeout=5)
    if status != 200:
        raise RuntimeError(f"{server.variant}: GET {check} with the cookie answered {status}")


# -- wrk --------------------------------------------------------------------------


def _write_lua(server: Server, workdir: Path) -> Path:
    script = workdir / f"{server.variant}.lua"
    return cookie_script(script, server.cookie, "bench/overhead.py")


# -- the run ----------------------------------------------------------------------


@dataclass
class Options:
    duration: float
    rounds: int
    connections: int
    warmup: float
    json_path: Path | None
    strict: bool
    sections: tuple[str, ...] = ("asgi", "wsgi")


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="Throughput and p99 latency, driven by wrk: no session middleware, "
        "Starlette's SessionMiddleware and ClusterSessionMiddleware under uvicorn (asgi); "
        "Flask's and Django's sessions and ours under gunicorn (wsgi).",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run [8]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all runs [3]")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections [32]")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run [2]")
    parser.add_argument("--quick", action="store_true", help="smoke run, ~1.5 min (2 s x 1 round)")
    parser.add_argument(
        "--only", choices=("asgi", "wsgi"), help="one section: uvicorn rows or gunicorn rows"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup = 2.0, 1, 1.0
    if args.duration < 1 or args.rounds < 1 or args.connections < 1:
        parser.error("--duration, --rounds and --connections must be at least 1")
    sections = (args.only,) if args.only else ("asgi", "wsgi")
    return Options(
        args.duration, args.rounds, args.connections, args.warmup, args.json, args.strict, sections
    )


def variants() -> tuple[str, ...]:
    """The rows that can run here (starsessions needs redis-server)."""
    why = starsessions_missing()
    if why is None:
        return VARIANTS
    print(f"bench: no starsessions row: {why}", flush=True)
    return tuple(v for v in VARIANTS if v != "starsessions")


@contextlib.contextmanager
def _servers(workdir: Path, rows: tuple[str, ...]) -> Iterator[dict[str, Server]]:
    """All variants' servers, ready and logged in; every one stopped on the way out."""
    servers: dict[str, Server] = {}
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(workdir)) if "starsessions" in rows else None
        try:
            for variant in rows:
                servers[variant] = _start_server(variant, workdir, redis_url)
            for server in servers.values():
                _wait_ready(server)
                _log_in(server)
            yield servers
        finally:
            for server in servers.values():
                stop_group(server.process)


def _raise_on_sigterm(signum: int, frame: object) -> None:
    # Turn SIGTERM into an exception so the finally blocks stop the servers.
    raise SystemExit(128 + signum)


def measure(options: Options, rows: tuple[str, ...]) -> list[Sample]:
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        workdir = Path(tmp)
        with _servers(workdir, rows) as servers:
            scripts = {v: _write_lua(s, workdir) for v, s in servers.items()}
            if options.warmup > 0:
                for scenario in SCENARIOS:
                    for variant, server in servers.items():
                        run_wrk(
                            server.port, f"/{scenario}", scripts[variant],
                            duration=options.warmup, connections=options.connections,
                        )  # fmt: skip
            total = options.rounds * (len(SCENARIOS) * len(rows) + len(SIZE_SCENARIOS))
            for round_ in range(options.rounds):
                # Rotate the order each round so slow drift (thermal, noisy neighbours)
                # does not always fall on the same variant.
                shift = round_ % len(rows)
                order = rows[shift:] + rows[:shift]
                for scenario in SCENARIOS:
                    for variant in order:
                        samples.append(
                            sample(
                                variant, scenario, round_, servers[variant].port,
                                scripts[variant], duration=options.duration,
                                connections=options.connections,
                                counter=f"{len(samples) + 1:2d}/{total}",
                                pgid=servers[variant].process.pid,
                            )
                        )  # fmt: skip
            samples += _measure_size(options, servers["ours"], workdir, len(samples), total)
    return samples


def _measure_size(
    options: Options, ours: Server, workdir: Path, done: int, total: int
) -> list[Sample]:
    """Ours only: three keys read from a 5-key and from a 200-key, 64 KiB session."""
    scripts = {}
    for scenario in SIZE_SCENARIOS:
        size = scenario.removeprefix("read-")
        _log_in(ours, f"/login-{size}", f"/{scenario}")
        scripts[scenario] = cookie_script(workdir / f"{scenario}.lua", ours.cookie, "bench")
    samples: list[Sample] = []
    for round_ in range(options.rounds):
        order = SIZE_SCENARIOS if round_ % 2 == 0 else SIZE_SCENARIOS[::-1]
        for scenario in order:
            samples.append(
                sample(
                    "ours", scenario, round_, ours.port, scripts[scenario],
                    duration=options.duration, connections=options.connections,
                    counter=f"{done + len(samples) + 1:2d}/{total}",
                    pgid=ours.process.pid,
                )
            )  # fmt: skip
    return samples


def summarise(samples: list[Sample]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    rows = tuple(v for v in VARIANTS if any(s.row == v for s in samples))
    for scenario in SCENARIOS:
        medians = wrk_medians(samples, scenario, rows)
        ours, starlette, none = medians["ours"], medians["starlette"], medians["none"]
        ratios = {
            "rps_vs_starlette": ours["requests_per_s"] / starlette["requests_per_s"],
            "rps_vs_none": ours["requests_per_s"] / none["requests_per_s"],
            "p99_vs_starlette": ours["p99_ms"] / starlette["p99_ms"],
            "p99_vs_none": ours["p99_ms"] / none["p99_ms"],
        }
        if "starsessions" in medians:
            ratios["rps_vs_starsessions"] = (
                ours["requests_per_s"] / medians["starsessions"]["requests_per_s"]
            )
        # The same comparison by server CPU per request (the other's over ours, so it
        # reads like the throughput ratio): steadier than req/s on a loaded machine.
        for other in ("none", "starlette"):
            if "cpu_us_per_request" in ours and "cpu_us_per_request" in medians[other]:
                ratios[f"cpu_{other}_over_ours"] = (
                    medians[other]["cpu_us_per_request"] / ours["cpu_us_per_request"]
                )
        summary[scenario] = {
            "medians": medians,
            "ratios": ratios,
            "targets": TARGETS[scenario],
            "targets_met": {
                name: ratios[name] >= target
                for name, target in TARGETS[scenario].items()
                if target is not None
            },
        }
    if any(s.scenario in SIZE_SCENARIOS for s in samples):
        small, large = (wrk_medians(samples, s, ("ours",))["ours"] for s in SIZE_SCENARIOS)
        cost = small["requests_per_s"] / large["requests_per_s"]
        summary["size"] = {
            "medians": {"read-small": small, "read-large": large},
            "ratios": {"large_read_cost_vs_small": cost},
            "targets": {"large_read_cost_vs_small": TARGET_SIZE_COST},
            "targets_met": {"large_read_cost_vs_small": cost <= TARGET_SIZE_COST},
        }
    return summary


def _print_table(summary: dict[str, Any], options: Options) -> None:
    print(
        f"\nmedians of {options.rounds} round(s) x {options.duration:g} s, wrk -t1 "
        f"-c{options.connections}, uvicorn 1 worker (uvloop, httptools)\n"
    )
    print_medians(summary, label="variant", width=12)
    print(f"\n{'scenario':8s} {'ratio':26s} {'value':>7s}  target")
    for scenario, result in summary.items():
        for name, value in result["ratios"].items():
            target = result.get("targets", {}).get(name)
            met = result["targets_met"].get(name)
            verdict = "" if met is None else ("MET" if met else "MISS")
            bound = "<=" if name == "large_read_cost_vs_small" else ">="
            wanted = f"{bound} {target}x {verdict}" if target is not None else ""
            print(f"{scenario:8s} {name:26s} {value:6.2f}x  {wanted}")
    print("\n(p99 ratios below 1 mean ours is faster)")


def _run_asgi(options: Options) -> tuple[dict[str, Any], bool]:
    """The uvicorn section: its JSON document and whether a target was missed."""
    rows = variants()
    runs = options.rounds * (len(SCENARIOS) * len(rows) + len(SIZE_SCENARIOS))
    print(
        f"bench (ASGI): {runs} wrk runs of {options.duration:g} s "
        f"(+ {len(SCENARIOS) * len(rows)} warm-ups of {options.warmup:g} s)",
        flush=True,
    )
    samples = measure(options, rows)
    summary = summarise(samples)
    _print_table(summary, options)
    document = {"samples": [asdict(s) for s in samples], "summary": summary}
    missed = any(not ok for r in summary.values() for ok in r["targets_met"].values())
    return document, missed


def _run_wsgi(options: Options) -> tuple[dict[str, Any], bool]:
    """The gunicorn section (``bench.wsgi_overhead``): its JSON document and any miss."""
    from bench import wsgi_overhead as wsgi

    runs = options.rounds * len(wsgi.SCENARIOS) * len(wsgi.ROWS)
    print(
        f"bench (WSGI): {runs} wrk runs of {options.duration:g} s "
        f"(+ {len(wsgi.SCENARIOS) * len(wsgi.ROWS)} warm-ups of {options.warmup:g} s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-wsgi-") as tmp:
        samples = wsgi.measure(
            Path(tmp),
            duration=options.duration,
            rounds=options.rounds,
            connections=options.connections,
            warmup=options.warmup,
        )
    summary = wsgi.summarise(samples)
    wsgi.print_table(
        summary,
        rounds=options.rounds,
        duration=options.duration,
        connections=options.connections,
    )
    document = {"samples": [asdict(s) for s in samples], "summary": summary}
    return document, wsgi.missed(summary)


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    check_tools(wsgi="wsgi" in options.sections)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    sections = {"asgi": _run_asgi, "wsgi": _run_wsgi}
    documents: dict[str, Any] = {}
    missed = False
    try:
        for name in options.sections:
            documents[name], section_missed = sections[name](options)
            missed = missed or section_missed
    except KeyboardInterrupt:
        print("\nbench: interrupted; servers stopped", file=sys.stderr)
        return 130
    if options.json_path is not None:
        document = {
            "options": {
                k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()
            },
            **documents,
        }
        options.json_path.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if options.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
