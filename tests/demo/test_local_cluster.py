"""The README's main command: a local 3-node cluster behind HAProxy, on loopback."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from ..support.polling import wait_for
from .conftest import Demo

pytestmark = pytest.mark.network


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
