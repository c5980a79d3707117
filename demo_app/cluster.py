"""A local 3-node demo cluster on loopback: ``python -m demo_app`` (``make demo``).

Three uvicorn processes on 127.0.0.1:8001-8003, multicast membership on lo, a
generated secret; HAProxy on 127.0.0.1:8000 in front of them when it is installed.
Cookies are per host, not per port, so a browser fails over by switching ports.
Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .haproxy import READINESS_PATH, haproxy_config

logger = logging.getLogger("clustersession.demo")

HOST = "127.0.0.1"


@dataclass
class Proc:
    """One process of the demo, with its output relayed line by line."""

    name: str
    process: subprocess.Popen[bytes]
    relay: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.relay = threading.Thread(target=self._relay, daemon=True)
        self.relay.start()

    def _relay(self) -> None:
        stream: IO[bytes] | None = self.process.stdout
        assert stream is not None
        for raw in stream:
            logger.info("[%s] %s", self.name, raw.decode(errors="replace").rstrip())

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def node_env(route: str, secret: str, mcast_port: int) -> dict[str, str]:
    """The environment of one node: its route, the shared secret, loopback membership."""
    return {
        **os.environ,
        "CLUSTERSESSION_DISTRIBUTABLE": "true",
        "CLUSTERSESSION_JVM_ROUTE": route,
        "CLUSTERSESSION_SECRET": secret,
        "CLUSTERSESSION_MEMBERSHIP__BIND": HOST,  # multicast on lo
        "CLUSTERSESSION_MEMBERSHIP__PORT": str(mcast_port),
        "CLUSTERSESSION_RECEIVER__ADDRESS": HOST,
        "CLUSTERSESSION_VALVES__STATUS__PATH": "/cluster-status",
        "CLUSTERSESSION_VALVES__HEALTH__READINESS_PATH": READINESS_PATH,
    }


def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
    """Start a process in its own group (so Ctrl-C handling stays ours)."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Proc(name, process)


def wait_ready(port: int, timeout: float = 60.0) -> bool:
    """Whether the readiness probe on the port answers 200 before the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                f"http://{HOST}:{port}{READINESS_PATH}", timeout=1
            ) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m demo_app", description=__doc__)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--first-port", type=int, default=8001)
    parser.add_argument("--balancer-port", type=int, default=8000)
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    secret = secrets.token_urlsafe(24)
    # A group port of our own: another demo (or cluster) on this machine stays apart.
    mcast_port = random.randint(46000, 59000)
    procs: list[Proc] = []
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    workdir = Path(tempfile.mkdtemp(prefix="clustersession-demo-"))
    try:
        routes = [f"node{i}" for i in range(1, args.nodes + 1)]
        ports = [args.first_port + i for i in range(args.nodes)]
        for route, port in zip(routes, ports, strict=True):
            uvicorn = [sys.executable, "-m", "uvicorn", "demo_app.app:app", "--host", HOST,
                       "--port", str(port), "--log-level", "warning"]  # fmt: skip
            procs.append(start(route, uvicorn, node_env(route, secret, mcast_port)))
            # One at a time: each joins the cluster and fetches its sessions first.
            if not wait_ready(port):
                logger.error("%s did not start; see its output above", route)
                return 1
        balancer = ""
        if shutil.which("haproxy"):
            cfg = workdir / "haproxy.cfg"
            servers = [(r, f"{HOST}:{p}") for r, p in zip(routes, ports, strict=True)]
            cfg.write_text(haproxy_config(f"{HOST}:{args.balancer_port}", servers))
            procs.append(start("haproxy", ["haproxy", "-db", "-f", str(cfg)]))
            if wait_ready(args.balancer_port, 10):
                balancer = f"http://{HOST}:{args.balancer_port}/"
        lines = ["", "clustersession demo: a 3-node cluster on this machine", ""]
        if balancer:
            lines.append(f"  through HAProxy (route stickiness, failover): {balancer}")
        else:
            lines.append("  (install HAProxy for a balancer on port 8000: apt-get install haproxy)")
        for proc, port in zip(procs, ports, strict=False):
            lines.append(f"  {proc.name}: http://{HOST}:{port}/   pid {proc.process.pid}")
        lines += [
            f"  cluster status: http://{HOST}:{ports[0]}/cluster-status",
            "",
            "  Add to the cart, then kill the node that served you, e.g.:",
            f"    kill -9 {procs[0].process.pid}     # {procs[0].name}",
            "  and reload (through HAProxy, or on another node's port): the cart is still there.",
            "  Ctrl-C stops everything.",
            "",
        ]
        logger.info("\n".join(lines))
        stop.wait(args.duration)
    finally:
        logger.info("stopping the demo cluster")
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
