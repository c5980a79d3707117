"""The README's main command: a local 3-node cluster behind HAProxy, on loopback."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return bool(predicate())  # type: ignore[operator]


class Demo:
    """``python -m demo_app`` on random loopback ports, its output collected."""

    def __init__(self) -> None:
        self.first = random.randint(20000, 30000)
        self.balancer = self.first - 1
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "demo_app",
                "--first-port",
                str(self.first),
                "--balancer-port",
                str(self.balancer),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace"))

    def pid_of(self, node: str) -> int:
        for line in self.lines:
            match = re.search(rf"{node}: http://\S+\s+pid (\d+)", line)
            if match:
                return int(match[1])
        raise AssertionError(f"no pid for {node} in {''.join(self.lines)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # what Ctrl-C does
        self.process.wait(timeout=30)


@pytest.fixture
def demo() -> Iterator[Demo]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed: apt-get install haproxy")
    running = Demo()
    try:
        assert wait_for(
            lambda: any("Ctrl-C stops everything" in line for line in running.lines), 90
        )
        yield running
    finally:
        running.stop()


def test_failover_through_the_balancer_keeps_the_cart(demo: Demo) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{demo.balancer}", timeout=10) as browser:
        browser.post("/cart", data={"item": "apple"}, follow_redirects=True)
        browser.post("/cart", data={"item": "pear"}, follow_redirects=True)
        first = browser.get("/api/session").json()
        assert first["data"]["cart"] == ["apple", "pear"]
        served_by = first["node"]
        assert first["id"].endswith("." + served_by)
        os.kill(demo.pid_of(served_by), signal.SIGKILL)
        after = browser.get("/api/session").json()
        assert after["node"] != served_by
        assert after["data"]["cart"] == ["apple", "pear"]

        def rerouted() -> bool:  # once the new node has seen the old one go (milliseconds)
            nonlocal after
            after = browser.get("/api/session").json()
            assert after["data"]["cart"] == ["apple", "pear"]
            return bool(after["id"].endswith("." + after["node"]))

        assert wait_for(rerouted, 5)
    live_port = demo.first + int(after["node"].removeprefix("node")) - 1
    status = httpx.get(f"http://127.0.0.1:{live_port}/cluster-status.json").json()
    assert status["route"] == after["node"] and len(status["members"]) == 1  # the dead one left


def test_ctrl_c_stops_every_process(demo: Demo) -> None:
    pids = [demo.pid_of(node) for node in ("node1", "node2", "node3")]
    demo.stop()
    for pid in pids:
        assert wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), 10)
