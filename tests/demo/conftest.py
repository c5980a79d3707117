"""The README's main command as a fixture: ``python -m demo_app`` on free loopback ports."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..support.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> int:
    """A first port such that it and the next ``count - 1`` are free on loopback.

    Below Linux's ephemeral range (32768-60999), as in ``support.loopback``: the demo
    polls each port before its server listens, and a connect() whose ephemeral port
    is the polled port connects to itself (the server then cannot bind it). connect()
    takes the even ports of that range, and 2 of these 4 consecutive ports are even.
    """
    for _ in range(200):
        first = random.randint(20000, 32000 - count)
        try:
            for port in range(first, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no free loopback ports")


class Demo:
    """``python -m demo_app`` on random loopback ports, its output collected."""

    def __init__(self) -> None:
        self.balancer = free_ports(4)
        self.first = self.balancer + 1
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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.balancer}/"

    def pid_of(self, node: str) -> int:
        for line in self.lines:
            match = re.search(rf"\b{node}: http://\S+\s+pid (\d+)", line)
            if match:
                return int(match[1])
        raise AssertionError(f"no pid for {node} in {''.join(self.lines)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # what Ctrl-C does
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def demo() -> Iterator[Demo]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed: apt-get install haproxy")
    running = Demo()
    try:
        ready = wait_for(
            lambda: any("Ctrl-C stops" in line for line in running.lines), 90, interval=0.1
        )
        assert ready, "demo did not start:\n" + "".join(running.lines)
        assert any("through HAProxy" in line for line in running.lines), "".join(running.lines)
        yield running
    finally:
        running.stop()
        print("".join(running.lines))  # captured: pytest shows it when the test fails
