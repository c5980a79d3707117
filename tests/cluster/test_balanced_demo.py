"""The compose topology without Docker: 3 demo nodes and HAProxy, each on its own host."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from demo_app.haproxy import READINESS_PATH, haproxy_config

from ..support.loopback import SECRET
from ..support.polling import wait_for
from .network import Network

pytestmark = pytest.mark.hosts


def test_failover_through_haproxy_on_its_own_host(network_with_lb: Network) -> None:
    network = network_with_lb
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed: apt-get install haproxy")
    env = {
        "CLUSTERSESSION_SECRET": SECRET,
        "CLUSTERSESSION_DISTRIBUTABLE": "true",
        "CLUSTERSESSION_CHANNEL_SEND_OPTIONS": "6",
        # HAProxy's check (demo_app.haproxy): a node takes requests once it is ready.
        "CLUSTERSESSION_VALVES__HEALTH__READINESS_PATH": READINESS_PATH,
    }
    for host in network.hosts:
        network.run(
            host,
            [
                sys.executable,
                "-m",
                "uvicorn",
                "demo_app.app:app",
                "--host",
                "0.0.0.0",
                "--port",
                "8000",
                "--log-level",
                "warning",
            ],
            env={**env, "CLUSTERSESSION_JVM_ROUTE": host.name},
            stdout=subprocess.DEVNULL,
        )
    workdir = Path(tempfile.mkdtemp(prefix="cs-lb-"))
    socket_path = workdir / "haproxy.sock"
    servers = [(h.name, f"{h.address}:8000") for h in network.hosts]
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(str(socket_path), servers))
    assert network.lb is not None
    # HAProxy on its own host; the test reaches it through a Unix socket it also binds.
    network.run(network.lb, ["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL)
    transport = httpx.HTTPTransport(uds=str(socket_path))
    with httpx.Client(transport=transport, base_url="http://shop", timeout=10) as browser:

        def all_up() -> bool:
            try:
                nodes = {browser.get("/api/session").json()["node"] for _ in range(6)}
            except (httpx.TransportError, ValueError):
                return False
            return nodes == {h.name for h in network.hosts}

        assert wait_for(all_up, 60), "the nodes never all answered through HAProxy"
        browser.cookies.clear()
        browser.post("/cart", data={"item": "apple"})
        login = browser.get("/api/session").json()
        owner = login["node"]
        assert login["data"]["cart"] == ["apple"]
        assert all(browser.get("/api/session").json()["node"] == owner for _ in range(5))
        owner_host = next(h for h in network.hosts if h.name == owner)
        network.kill_host(owner_host, signal.SIGKILL)
        after = browser.get("/api/session").json()
        assert after["node"] != owner
        assert after["data"]["cart"] == ["apple"]
    shutil.rmtree(workdir, ignore_errors=True)
