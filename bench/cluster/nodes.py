"""The nodes a run starts: processes (all stopped on the way out), ports, HTTP to them.

Every process is in a session of its own, so its whole group can be killed, and is
registered here until stopped, so that :func:`stop_all` leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from bench.cluster.app import MODE_ENV, RECORD_ENV, SECRET
from bench.wrk import HOST, REPO_ROOT, child_env, free_port, http_get, stop_group, uvicorn_command
from clustersession import ClusterConfig

NODES: Final = ("node1", "node2", "node3")
SEND_OPTIONS: Final = {"async": 8, "sync": 6}
MCAST_PORTS: Final = (46000, 59000)
RECEIVER_PORTS: Final = (20000, 40000)

_PROCESSES: list[subprocess.Popen[bytes]] = []


def spawn(command: list[str], log: Path, env: dict[str, str], *, pipes: bool = False) -> Any:
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


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the process's group and close our ends of its pipes."""
    stop_group(process)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    with contextlib.suppress(ValueError):
        _PROCESSES.remove(process)


def finish(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Close its stdin (a worker's cue to stop), give it ``timeout`` s, then stop it."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    stop(process)


def stop_all() -> None:
    """Stop every process still running, the last started first.

    All are sent SIGTERM at once, then waited for (each group killed if it lingers):
    a run interrupted with 16 nodes up then takes seconds to clean up, not minutes.
    """
    processes = list(reversed(_PROCESSES))
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        stop(process)


class Ports:
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


def cluster_env(route: str, mcast_port: int, receiver_port: int, options: int) -> dict[str, str]:
    """The ``CLUSTERSESSION_*`` settings of a uvicorn cluster node on loopback."""
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


def loopback_config(route: str, mcast_port: int, receiver_port: int, **top: Any) -> ClusterConfig:
    """The in-process equivalent of :func:`cluster_env` (its send options by default)."""
    base = ClusterConfig(secret=SECRET, distributable=True, jvm_route=route)
    membership = replace(base.membership, port=mcast_port, bind=HOST, address="228.0.0.4")
    receiver = replace(base.receiver, address=HOST, port=receiver_port)
    return replace(base, membership=membership, receiver=receiver, **top)


def start_uvicorn(name: str, env: dict[str, str], workdir: Path) -> Node:
    """A uvicorn process serving the node app, configured by ``env``."""
    port = free_port()
    log = workdir / f"{name}.log"
    command = uvicorn_command("bench.cluster.app:create_app", port)
    return Node(name, port, spawn(command, log, child_env(env)), log)


def start_cluster(
    prefix: str, options: int, ports: Ports, workdir: Path, *, record: bool = False, count: int = 3
) -> list[Node]:
    """``count`` uvicorn nodes of one cluster (a group port of their own)."""
    mcast, base = ports.mcast(), ports.receiver_base()
    nodes = []
    for i, route in enumerate(NODES[:count]):
        env = cluster_env(route, mcast, base + i, options)
        if record:
            env[RECORD_ENV] = "1"
        nodes.append(start_uvicorn(f"{prefix}-{route}", env, workdir))
    return nodes


def get_json(port: int, path: str, cookie: str | None = None) -> Any:
    """The JSON body of one GET that must answer 200."""
    status, _, body = http_get(port, path, cookie)
    if status != 200:
        raise RuntimeError(f"GET {path} on port {port} answered {status}")
    return json.loads(body)


def log_tail(node: Node) -> str:
    return node.log.read_text(errors="replace")[-3000:]


def wait_ready(nodes: list[Node], deadline_s: float = 30.0) -> None:
    """Every node answers (uvicorn answers only after the lifespan's state transfer)."""
    deadline = time.monotonic() + deadline_s
    for node in nodes:
        while True:
            if node.process.poll() is not None:
                raise RuntimeError(
                    f"{node.name} exited with {node.process.returncode}:\n{log_tail(node)}"
                )
            try:
                http_get(node.port, "/ping", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{node.name} did not answer within {deadline_s:.0f} s:\n{log_tail(node)}"
                    ) from None
                time.sleep(0.05)


def wait_members(nodes: list[Node], count: int, deadline_s: float = 15.0) -> None:
    """Every node sees ``count`` members."""
    deadline = time.monotonic() + deadline_s
    for node in nodes:
        while get_json(node.port, "/bench/stats")["members"] != count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not see {count} members:\n{log_tail(node)}")
            time.sleep(0.05)


def log_in(node: Node) -> str:
    """Log in on ``node`` and write once; the cookie (also kept on the node) for wrk."""
    status, set_cookies, _ = http_get(node.port, "/login")
    values = [c.split(";", 1)[0] for c in set_cookies if c.startswith("session=")]
    if status != 200 or not values:
        raise RuntimeError(f"{node.name}: GET /login answered {status} without a session cookie")
    node.cookie = values[-1]
    status, _, body = http_get(node.port, "/write", node.cookie)
    if status != 200 or json.loads(body)["counter"] != 1:
        raise RuntimeError(f"{node.name}: GET /write with the cookie answered {status} {body!r}")
    return node.cookie


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` on the loop until true; an error naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
