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
* ``ours``: ``ClusterSessionMiddleware(app, secret_key=...)``, one node, no config
  (the cookie holds a signed id, the data stays in the server's memory).

Scenarios: ``read`` (``GET /read`` reads a few session keys: the common case) and
``write`` (``GET /write`` increments a counter in the session). wrk runs with one
thread (the machine has two cores: one for wrk, one for the server), variants are
interleaved and repeated in rounds, and the median of each is reported.

This module is also the app: the servers run ``uvicorn bench.overhead:create_app
--factory`` with the variant in ``BENCH_VARIANT``; its endpoints are ``bench.app``'s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
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

VARIANTS: Final = ("none", "starlette", "ours")
SCENARIOS: Final = ("read", "write")
SECRET: Final = "bench-secret-not-for-production"
VARIANT_ENV: Final = "BENCH_VARIANT"
# The targets for ours, as throughput ratios.
TARGET_VS_STARLETTE: Final = 2.0
TARGET_VS_NONE: Final = 0.7


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


def _start_server(variant: str, workdir: Path) -> Server:
    port = free_port()
    log = workdir / f"server-{variant}.log"
    env = child_env({VARIANT_ENV: variant})
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


def _log_in(server: Server) -> None:
    """Get the session cookie wrk will replay; checks the session actually works."""
    status, set_cookies, _ = http_get(server.port, "/login", timeout=5)
    if status != 200:
        raise RuntimeError(f"{server.variant}: GET /login answered {status}")
    if server.variant == "none":
        return  # no middleware, no cookie: wrk sends none
    values = [c.split(";", 1)[0] for c in set_cookies if c.startswith("session=")]
    if not values:
        raise RuntimeError(f"{server.variant}: GET /login set no session cookie")
    server.cookie = values[-1]
    # The session must come back with the cookie, or we would time an empty session.
    status, _, _ = http_get(server.port, "/read", server.cookie, timeout=5)
    if status != 200:
        raise RuntimeError(f"{server.variant}: GET /read with the cookie answered {status}")


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


@contextlib.contextmanager
def _servers(workdir: Path) -> Iterator[dict[str, Server]]:
    """All variants' servers, ready and logged in; every one stopped on the way out."""
    servers: dict[str, Server] = {}
    try:
        for variant in VARIANTS:
            servers[variant] = _start_server(variant, workdir)
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


def measure(options: Options) -> list[Sample]:
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        workdir = Path(tmp)
        with _servers(workdir) as servers:
            scripts = {v: _write_lua(s, workdir) for v, s in servers.items()}
            if options.warmup > 0:
                for scenario in SCENARIOS:
                    for variant, server in servers.items():
                        run_wrk(
                            server.port, f"/{scenario}", scripts[variant],
                            duration=options.warmup, connections=options.connections,
                        )  # fmt: skip
            total = options.rounds * len(SCENARIOS) * len(VARIANTS)
            for round_ in range(options.rounds):
                # Rotate the order each round so slow drift (thermal, noisy neighbours)
                # does not always fall on the same variant.
                order = VARIANTS[round_ % 3 :] + VARIANTS[: round_ % 3]
                for scenario in SCENARIOS:
                    for variant in order:
                        samples.append(
                            sample(
                                variant, scenario, round_, servers[variant].port,
                                scripts[variant], duration=options.duration,
                                connections=options.connections,
                                counter=f"{len(samples) + 1:2d}/{total}",
                            )
                        )  # fmt: skip
    return samples


def summarise(samples: list[Sample]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for scenario in SCENARIOS:
        medians = wrk_medians(samples, scenario, VARIANTS)
        ours, starlette, none = medians["ours"], medians["starlette"], medians["none"]
        ratios = {
            "rps_vs_starlette": ours["requests_per_s"] / starlette["requests_per_s"],
            "rps_vs_none": ours["requests_per_s"] / none["requests_per_s"],
            "p99_vs_starlette": ours["p99_ms"] / starlette["p99_ms"],
            "p99_vs_none": ours["p99_ms"] / none["p99_ms"],
        }
        summary[scenario] = {
            "medians": medians,
            "ratios": ratios,
            "targets_met": {
                "rps_vs_starlette": ratios["rps_vs_starlette"] >= TARGET_VS_STARLETTE,
                "rps_vs_none": ratios["rps_vs_none"] >= TARGET_VS_NONE,
            },
        }
    return summary


def _print_table(summary: dict[str, Any], options: Options) -> None:
    print(
        f"\nmedians of {options.rounds} round(s) x {options.duration:g} s, wrk -t1 "
        f"-c{options.connections}, uvicorn 1 worker (uvloop, httptools)\n"
    )
    print_medians(summary, label="variant", width=10)
    print(
        f"\n{'scenario':8s} {'req/s ours/starlette':>21s} {'ours/none':>10s}"
        f" {'p99 ours/starlette':>19s} {'ours/none':>10s}"
    )
    for scenario, result in summary.items():
        r, met = result["ratios"], result["targets_met"]
        vs_st = f"{r['rps_vs_starlette']:.2f}x {'ok' if met['rps_vs_starlette'] else 'MISS'}"
        vs_none = f"{r['rps_vs_none']:.2f}x {'ok' if met['rps_vs_none'] else 'MISS'}"
        print(
            f"{scenario:8s} {vs_st:>21s} {vs_none:>10s}"
            f" {r['p99_vs_starlette']:18.2f}x {r['p99_vs_none']:9.2f}x"
        )
    print(
        f"\ntargets (req/s): ours >= {TARGET_VS_STARLETTE}x starlette, "
        f">= {TARGET_VS_NONE}x none; p99 ratios below 1 mean ours is faster"
    )


def _run_asgi(options: Options) -> tuple[dict[str, Any], bool]:
    """The uvicorn section: its JSON document and whether a target was missed."""
    runs = options.rounds * len(SCENARIOS) * len(VARIANTS)
    print(
        f"bench (ASGI): {runs} wrk runs of {options.duration:g} s "
        f"(+ {len(SCENARIOS) * len(VARIANTS)} warm-ups of {options.warmup:g} s)",
        flush=True,
    )
    samples = measure(options)
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
