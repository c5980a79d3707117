"""The WSGI section of ``bench.overhead``: Flask and Django sessions vs ours, under gunicorn.

Rows, each its own gunicorn on 127.0.0.1 (apps in ``bench.flask_app`` and
``bench.django_app``, the same ``/read`` and ``/write`` as the ASGI rows):

* Flask: ``flask-cookie`` (Flask's signed-cookie session: the baseline),
  ``flask-ours`` (``ClusterSessionInterface()``, one node) and ``flask-cluster``
  (the measured node of a 3-node cluster: two more Flask gunicorns are its peers
  on loopback, every ``/write`` replicates a delta to both).
* Django: ``django-db`` (the default engine, SQLite in a temporary directory,
  migrated), ``django-cache`` (``locmem``) and ``django-ours``
  (``SESSION_ENGINE = "clustersession.django"``, one node).

Every row is served alike: ``gunicorn -w 1 -k gthread --threads 4``. gthread
keeps connections alive (the sync worker closes each after one request), as
uvicorn does for the ASGI rows, so wrk times the app and its session rather than a
TCP handshake per request; four threads, as gthread workers are deployed, so our
hand-offs between request threads and the manager's loop thread are measured under
the contention they meet there. The rows of a group are interleaved and rotated
over rounds, as in the ASGI section, and medians are compared.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.wrk import (
    HOST,
    REPO_ROOT,
    Sample,
    child_env,
    cookie_script,
    free_port,
    http_get,
    print_medians,
    run_wrk,
    sample,
    stop_group,
)
from bench.wrk import medians as wrk_medians

SCENARIOS: Final = ("read", "write")
FLASK_ROWS: Final = ("flask-cookie", "flask-ours", "flask-cluster")
DJANGO_ROWS: Final = ("django-db", "django-cache", "django-ours")
GROUPS: Final = (FLASK_ROWS, DJANGO_ROWS)
ROWS: Final = FLASK_ROWS + DJANGO_ROWS
CLUSTER_SECRET: Final = "bench-wsgi-cluster-secret-not-for-production"
WORKERS: Final = 1
THREADS: Final = 4


@dataclass(frozen=True)
class Target:
    """A throughput ratio ``numerator / denominator`` the issue asks to reach."""

    name: str
    numerator: str
    denominator: str
    minimum: float


TARGETS: Final = (
    Target("ours / flask-cookie", "flask-ours", "flask-cookie", 1.0),
    Target("ours / django-sqlite", "django-ours", "django-db", 2.0),
    Target("clustered / standalone", "flask-cluster", "flask-ours", 0.85),
)
# Shown beside the targets, with no target of their own.
INFO_RATIOS: Final = (("ours / django-cache", "django-ours", "django-cache"),)


def gunicorn_command(app: str, port: int, *, workers: int = WORKERS) -> list[str]:
    """How every WSGI row is served: gthread, ``THREADS`` threads, quiet, on loopback."""
    return [
        sys.executable, "-m", "gunicorn", app, "--chdir", str(REPO_ROOT),
        "--bind", f"{HOST}:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(THREADS),
        "--log-level", "warning",
    ]  # fmt: skip


def app_for(row: str) -> str:
    """The gunicorn app (a factory call) serving ``row``."""
    module = "bench.flask_app" if row.startswith("flask") else "bench.django_app"
    return f"{module}:create_app()"


def cluster_env(route: str, mcast_port: int, receiver_port: int) -> dict[str, str]:
    """The ``CLUSTERSESSION_*`` settings of a distributable Flask node on loopback."""
    return {
        "CLUSTERSESSION_DISTRIBUTABLE": "true",
        "CLUSTERSESSION_SECRET": CLUSTER_SECRET,
        "CLUSTERSESSION_JVM_ROUTE": route,
        "CLUSTERSESSION_MEMBERSHIP__BIND": HOST,
        "CLUSTERSESSION_MEMBERSHIP__PORT": str(mcast_port),
        "CLUSTERSESSION_RECEIVER__ADDRESS": HOST,
        "CLUSTERSESSION_RECEIVER__PORT": str(receiver_port),
    }


# -- servers ----------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    cookie: str | None = None  # the ``Cookie`` header value wrk sends


def start_gunicorn(
    name: str, variant: str, workdir: Path, extra: dict[str, str], *, workers: int = WORKERS
) -> Server:
    """A gunicorn in a session of its own (its whole group is stopped at the end)."""
    port = free_port()
    log = workdir / f"{name}.log"
    env = child_env({"BENCH_VARIANT": variant, **extra})
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            gunicorn_command(app_for(variant), port, workers=workers),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    return Server(name, port, process, log)


def log_tail(server: Server) -> str:
    return server.log.read_text(errors="replace")[-3000:]


def wait_ready(server: Server, deadline_s: float = 30.0) -> None:
    """Poll ``/ping`` until it answers 200 (a deadline, not a fixed sleep).

    Ours start their manager with the first request, so this also waits for that.
    """
    deadline = time.monotonic() + deadline_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n{log_tail(server)}"
            )
        try:
            if http_get(server.port, "/ping", timeout=deadline_s)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not answer within {deadline_s:.0f} s")
        time.sleep(0.05)


def stats(server: Server) -> dict[str, Any]:
    """The ``/bench/stats`` of whichever worker answers (ours only)."""
    status, _, body = http_get(server.port, "/bench/stats")
    if status != 200:
        raise RuntimeError(f"{server.name}: GET /bench/stats answered {status}")
    found: dict[str, Any] = json.loads(body)
    return found


def wait_members(servers: list[Server], count: int, deadline_s: float = 20.0) -> None:
    """Every (one-worker) server sees ``count`` other members."""
    deadline = time.monotonic() + deadline_s
    for server in servers:
        while stats(server)["members"] != count:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{server.name} did not see {count} members:\n{log_tail(server)}"
                )
            time.sleep(0.05)


def log_in(server: Server) -> None:
    """Log in, keep the cookies for wrk, and check the session comes back with them."""
    status, set_cookies, _ = http_get(server.port, "/login")
    pairs = [c.split(";", 1)[0] for c in set_cookies]
    if status != 200 or not pairs:
        raise RuntimeError(f"{server.name}: GET /login answered {status} without a cookie")
    server.cookie = "; ".join(pairs)
    # A /read without the session would answer 500: we would time an error page.
    for path in ("/read", "/write"):
        status, _, body = http_get(server.port, path, server.cookie)
        if status != 200:
            raise RuntimeError(f"{server.name}: GET {path} with the cookie answered {status}")
    if json.loads(body)["counter"] != 1:
        raise RuntimeError(f"{server.name}: /write did not find the logged-in session: {body!r}")


@contextlib.contextmanager
def servers(workdir: Path) -> Iterator[dict[str, Server]]:
    """Every row's server (and the cluster's two peers), ready and logged in."""
    from bench.cluster.nodes import Ports  # random group and receiver ports, as bench.cluster

    started: list[Server] = []
    rows: dict[str, Server] = {}
    try:
        ports = Ports()
        mcast, base = ports.mcast(), ports.receiver_base()
        db = {"BENCH_DJANGO_DB": str(workdir / "sessions.sqlite3")}
        for row in ROWS:
            if row == "flask-cluster":
                continue
            rows[row] = start_gunicorn(row, row, workdir, db if row == "django-db" else {})
            started.append(rows[row])
        nodes = [
            start_gunicorn(f"flask-cluster-{route}", "flask-cluster", workdir,
                           cluster_env(route, mcast, base + i))
            for i, route in enumerate(("node1", "node2", "node3"))
        ]  # fmt: skip
        started += nodes
        rows["flask-cluster"] = nodes[0]  # the measured node; the others are its peers
        for server in started:
            wait_ready(server)
        wait_members(nodes, 2)
        for server in rows.values():
            log_in(server)
        yield {row: rows[row] for row in ROWS}
    finally:
        for server in started:
            stop_group(server.process)


# -- the run ----------------------------------------------------------------------


def measure(
    workdir: Path, *, duration: float, rounds: int, connections: int, warmup: float
) -> list[Sample]:
    """Every row x scenario, ``rounds`` times, rows of a group interleaved and rotated."""
    samples: list[Sample] = []
    with servers(workdir) as running:
        scripts = {
            row: cookie_script(workdir / f"{row}.lua", s.cookie, "bench/wsgi_overhead.py")
            for row, s in running.items()
        }
        if warmup > 0:
            for scenario in SCENARIOS:
                for row, server in running.items():
                    run_wrk(server.port, f"/{scenario}", scripts[row],
                            duration=warmup, connections=connections)  # fmt: skip
        total = rounds * len(SCENARIOS) * len(ROWS)
        for round_ in range(rounds):
            for scenario in SCENARIOS:
                for group in GROUPS:
                    # Rotated each round: slow drift does not always fall on one row.
                    shift = round_ % len(group)
                    for row in group[shift:] + group[:shift]:
                        samples.append(
                            sample(
                                row, scenario, round_, running[row].port, scripts[row],
                                duration=duration, connections=connections,
                                counter=f"{len(samples) + 1:2d}/{total}",
                                pgid=running[row].process.pid,
                            )
                        )  # fmt: skip
    return samples


def summarise(samples: list[Sample]) -> dict[str, Any]:
    """Medians per row and scenario, the targets' ratios and whether each is met."""
    summary: dict[str, Any] = {}
    for scenario in SCENARIOS:
        medians = wrk_medians(samples, scenario, ROWS)

        def ratio(
            a: str, b: str, key: str = "requests_per_s", medians: dict[str, Any] = medians
        ) -> float:
            return float(medians[a][key] / medians[b][key])

        summary[scenario] = {
            "medians": medians,
            "targets": {
                t.name: {
                    "ratio": ratio(t.numerator, t.denominator),
                    "p99_ratio": ratio(t.numerator, t.denominator, "p99_ms"),
                    "minimum": t.minimum,
                    "met": ratio(t.numerator, t.denominator) >= t.minimum,
                }
                for t in TARGETS
            },
            "info": {
                name: {"ratio": ratio(a, b), "p99_ratio": ratio(a, b, "p99_ms")}
                for name, a, b in INFO_RATIOS
            },
        }
    return summary


def print_table(summary: dict[str, Any], *, rounds: int, duration: float, connections: int) -> None:
    print(
        f"\nWSGI: medians of {rounds} round(s) x {duration:g} s, wrk -t1 -c{connections}, "
        f"gunicorn -w {WORKERS} -k gthread --threads {THREADS}\n"
    )
    print_medians(summary, label="row", width=14)
    print(
        f"\n{'scenario':8s} {'ratio (req/s)':24s} {'value':>7s} {'target':>8s}  {'p99 ratio':>9s}"
    )
    for scenario, result in summary.items():
        for name, t in result["targets"].items():
            verdict = "MET" if t["met"] else "MISS"
            print(
                f"{scenario:8s} {name:24s} {t['ratio']:6.2f}x {'>= ' + str(t['minimum']):>8s}"
                f"  {t['p99_ratio']:8.2f}x  {verdict}"
            )
        for name, info in result["info"].items():
            print(
                f"{scenario:8s} {name:24s} {info['ratio']:6.2f}x {'':8s}  {info['p99_ratio']:8.2f}x"
            )
    print("\np99 ratios below 1 mean the numerator is faster")


def missed(summary: dict[str, Any]) -> bool:
    """Whether any scenario missed any target."""
    return any(not t["met"] for r in summary.values() for t in r["targets"].values())
