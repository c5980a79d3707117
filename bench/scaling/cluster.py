"""One cluster of uvicorn nodes on loopback: start, fill, a node joining, settle, stats."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from bench.cluster.nodes import Ports, cluster_env, spawn, stop
from bench.scaling.app import SECRET
from bench.wrk import child_env, free_port, http_get, uvicorn_command

READY_PATH: Final = "/readyz"
CHUNK: Final = 5000  # sessions per /bench/bulk request

T = TypeVar("T")
R = TypeVar("R")


def on_threads(function: Callable[[T], R], items: list[T]) -> list[R]:
    """``function`` over ``items``, a thread each; results in order.

    Interrupted (SIGTERM, Ctrl-C), it does not wait for the threads: the caller's
    ``stop_all`` stops the nodes they are talking to, which ends them. (A ``with``
    executor would first wait for them all: a fill's remaining minutes of requests.)
    """
    pool = ThreadPoolExecutor(len(items))
    try:
        results = list(pool.map(function, items))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


@dataclass
class Node:
    route: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    cookies: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        status, _, body = http_get(self.port, "/bench/stats", timeout=30)
        if status != 200:
            raise RuntimeError(f"{self.route}: /bench/stats answered {status}")
        found: dict[str, Any] = json.loads(body)
        return found

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


class Cluster:
    """The nodes of one manager kind, on a multicast group port of their own."""

    def __init__(
        self, kind: str, ports: Ports, workdir: Path, *, send_options: int, backups: int
    ) -> None:
        self.kind = kind
        self.label = kind
        self.workdir = workdir
        self.mcast, self.base = ports.mcast(), ports.receiver_base()
        self.send_options = send_options
        self.backups = backups
        self.nodes: list[Node] = []

    def _env(self, index: int) -> dict[str, str]:
        route = f"node{index + 1}"
        env = cluster_env(route, self.mcast, self.base + index, self.send_options)
        env.update({
            "CLUSTERSESSION_SECRET": SECRET,
            "CLUSTERSESSION_MANAGER__KIND": self.kind,
            "CLUSTERSESSION_MANAGER__BACKUPS": str(self.backups),
            "CLUSTERSESSION_MANAGER__MAP_SEND_OPTIONS": str(self.send_options),
            "CLUSTERSESSION_VALVES__HEALTH__READINESS_PATH": READY_PATH,
        })  # fmt: skip
        return env

    def spawn(self) -> Node:
        """Start the next node (``node<i>``); returns at once."""
        index = len(self.nodes)
        port = free_port()
        log = self.workdir / f"{self.label}-node{index + 1}.log"
        command = uvicorn_command("bench.scaling.app:create_app", port)
        node = Node(f"node{index + 1}", port, spawn(command, log, child_env(self._env(index))), log)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            stop(node.process)

    def stats(self) -> list[dict[str, Any]]:
        return on_threads(Node.stats, self.nodes)

    def fill(self, sessions: int, size: int | None = None) -> tuple[float, float]:
        """Every node creates its share of ``sessions`` (values of ``size`` bytes, or the
        realistic session), all at once; the seconds it took, the mean encoded bytes."""
        encoded = [0] * len(self.nodes)
        shares = [sessions // len(self.nodes)] * len(self.nodes)
        shares[0] += sessions - sum(shares)
        starts = [sum(shares[:i]) for i in range(len(shares))]

        def create(i: int) -> None:
            node = self.nodes[i]
            for first in range(starts[i], starts[i] + shares[i], CHUNK):
                n = min(CHUNK, starts[i] + shares[i] - first)
                sized = "" if size is None else f"&size={size}"
                status, _, body = http_get(
                    node.port, f"/bench/bulk?n={n}&start={first}{sized}", timeout=300
                )
                if status != 200:
                    raise RuntimeError(f"{node.route}: bulk answered {status} {body!r}")
                encoded[i] += json.loads(body)["encoded_bytes"]

        began = time.monotonic()
        on_threads(create, list(range(len(self.nodes))))
        return time.monotonic() - began, sum(encoded) / max(1, sessions)

    def settled(self, sessions: int) -> Callable[[], bool]:
        """Whether every copy is where it belongs: all ``sessions`` on every node (delta);
        ``1 + backups`` copies of each, every other node a proxy (backup)."""

        def check() -> bool:
            stats = self.stats()
            if any(s["members"] != len(self.nodes) - 1 for s in stats):
                return False
            if self.kind == "delta":
                return all(s["sessions"] >= sessions for s in stats)
            copies = min(1 + self.backups, len(self.nodes))
            held = sum(s["sessions"] for s in stats)
            known = all(s["sessions"] + s["roles"]["proxies"] >= sessions for s in stats)
            return known and held >= sessions * copies

        return check

    def log_in(self, users: int) -> None:
        """``users`` users log in on every node; their cookies go to its wrk."""
        for node in self.nodes:
            for _ in range(users):
                status, cookies, _ = http_get(node.port, "/login")
                values = [c.split(";", 1)[0] for c in cookies if c.startswith("session=")]
                if status != 200 or not values:
                    raise RuntimeError(f"{node.route}: /login answered {status} without a cookie")
                node.cookies.append(values[-1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, nodes: list[Node]) -> float:
    """Poll ``check`` until true; the seconds it took, or an error with a node's log."""
    began = time.monotonic()
    while True:
        for node in nodes:
            if node.process.poll() is not None:
                raise RuntimeError(f"{node.route} exited:\n{node.tail()}")
        try:
            if check():
                return time.monotonic() - began
        except OSError:
            pass  # not listening yet
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def time_ready(node: Node, timeout: float) -> tuple[float, float]:
    """From now (just spawned) to ``/readyz`` answering 200, and from its first answer."""
    began = time.monotonic()
    first_answer: float | None = None
    while True:
        if node.process.poll() is not None:
            raise RuntimeError(f"{node.route} exited:\n{node.tail()}")
        try:
            status, _, _ = http_get(node.port, READY_PATH, timeout=5)
        except OSError:
            status = 0
        now = time.monotonic()
        if status and first_answer is None:
            first_answer = now
        if status == 200:
            assert first_answer is not None
            return now - began, now - first_answer
        if now - began > timeout:
            raise RuntimeError(f"{node.route} not ready after {timeout:.0f} s:\n{node.tail()}")
        time.sleep(0.02)
