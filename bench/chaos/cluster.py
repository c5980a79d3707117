"""A chaos run's cluster: N namespace hosts running the test app, and a client host.

Built on the tests' harness (``tests.cluster``): each node is a :class:`WebNode`
(uvicorn serving ``tests.support.app``) reached by the runner over its Unix socket
and by the client, running in the ``lb`` host, over TCP on port :data:`HTTP_PORT`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.network import Host, Network
from tests.cluster.web_nodes import WebNode
from tests.support.polling import wait_for

HTTP_PORT = 8000
RECEIVER_PORTS = "4000-4099"
"""The receiver's default port and auto-bind range (``receiver.port``, ``auto_bind``)."""


@dataclass
class Attempt:
    """One request the client made (a line of its output)."""

    t: float
    node: int
    op: str
    value: int
    ok: bool
    ms: float
    token: str | None
    was: str | None = None
    """The session this request's cookie named, when the node started another one."""


class ClientRun:
    """The client process (:mod:`bench.chaos.client`) in the client host."""

    def __init__(self, process: subprocess.Popen[bytes], out: Path, nodes: Sequence[int]) -> None:
        self.process = process
        self.out = out
        self.nodes = list(nodes)
        """Which cluster node each client-side node index is."""

    def stop(self) -> list[Attempt]:
        """Stop the client (SIGTERM) and read what it did."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=30)
        return self.attempts()

    def attempts(self) -> list[Attempt]:
        """What the client did so far (node numbers are cluster indexes)."""
        found = []
        for line in self.out.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by SIGTERM
            record["node"] = self.nodes[record["node"]]
            found.append(Attempt(**record))
        return found


class ChaosCluster:
    """``with ChaosCluster(3) as cluster:``: hosts, nodes started; leaving removes all."""

    def __init__(self, hosts: int = 3, *, subnet: str = "10.78.0", **env: str) -> None:
        self.network = Network(hosts, subnet=subnet, lb=True)
        self.env = env
        self.nodes: list[WebNode] = []
        self.dir = Path(tempfile.mkdtemp(prefix="cs-chaos-"))

    def __enter__(self) -> ChaosCluster:
        self.network.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.close()
        self.network.__exit__(*exc)

    @property
    def client_host(self) -> Host:
        assert self.network.lb is not None
        return self.network.lb

    def start(self) -> list[WebNode]:
        """Start a node on every host (all at once); return them once all answer."""
        self.nodes = [
            WebNode(self.network, host, tcp_port=HTTP_PORT, **self.env)
            for host in self.network.hosts
        ]
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            assert node.wait_ready(60), f"{node.host.name} did not start: {node.log.read_text()}"
        assert wait_for(self.all_members, 30), "the nodes never all saw each other"
        return self.nodes

    def all_members(self, nodes: Sequence[WebNode] | None = None) -> bool:
        """Whether each of ``nodes`` (default all) lists all the others as members."""
        nodes = self.nodes if nodes is None else nodes
        names = {n.host.name for n in nodes}
        try:
            return all(
                set(n.client.get("/health").json()["members"]) >= names - {n.host.name}
                for n in nodes
            )
        except (httpx.HTTPError, ValueError):
            return False

    def start_client(
        self, nodes: Sequence[int] | None = None, *, duration: float = 600, **options: int
    ) -> ClientRun:
        """Start the writing client on the client host, sending to ``nodes`` (indexes)."""
        chosen = list(range(len(self.nodes))) if nodes is None else list(nodes)
        targets = ",".join(f"{self.nodes[i].host.address}:{HTTP_PORT}" for i in chosen)
        out = self.dir / f"client-{time.monotonic_ns()}.jsonl"
        argv = [sys.executable, "-m", "bench.chaos.client", "--nodes", targets,
                "--out", str(out), "--duration", str(duration)]  # fmt: skip
        for name, value in options.items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        process = self.network.run(self.client_host, argv, stdout=subprocess.DEVNULL)
        run = ClientRun(process, out, chosen)
        assert wait_for(lambda: out.exists() and out.stat().st_size > 0, 30), "client silent"
        return run

    def state(self, node: WebNode, contents: bool = False) -> dict[str, Any] | None:
        """A node's ``/state`` (None if it does not answer); with ``contents``, every
        session's route and values under ``"contents"``."""
        try:
            answer: dict[str, Any] = node.client.get(
                "/state", params={"contents": "1"} if contents else None
            ).json()
        except (httpx.HTTPError, ValueError):
            return None
        return answer

    def fingerprints(self, nodes: Sequence[WebNode] | None = None) -> list[str | None]:
        """Each node's session fingerprint (None for a node that does not answer)."""
        states = [self.state(n) for n in (self.nodes if nodes is None else nodes)]
        return [s["fingerprint"] if s else None for s in states]

    def converged(self, nodes: Sequence[WebNode] | None = None) -> bool:
        """Whether the nodes all answer and hold identical sessions."""
        prints = self.fingerprints(nodes)
        return None not in prints and len(set(prints)) == 1

    def time_to_converge(
        self, timeout: float, nodes: Sequence[WebNode] | None = None
    ) -> float | None:
        """Seconds until :meth:`converged` (polled every 50 ms), or None at the deadline."""
        start = time.monotonic()
        if wait_for(lambda: self.converged(nodes), timeout, interval=0.05):
            return time.monotonic() - start
        return None

    def contents(self, node: WebNode) -> dict[str, dict[str, Any]]:
        """Every session on ``node``: id -> {"route", "values"}."""
        state = self.state(node, contents=True)
        assert state is not None, f"{node.host.name} does not answer"
        found: dict[str, dict[str, Any]] = state["contents"]
        return found

    @contextmanager
    def stopped(self, node: WebNode, signal_stop: int, signal_cont: int) -> Iterator[None]:
        """``node``'s processes stopped for the block's duration."""
        self.network.kill_host(node.host, signal_stop)
        try:
            yield
        finally:
            self.network.kill_host(node.host, signal_cont)
