"""Prometheus metrics of real uvicorn nodes, scraped and parsed by prometheus_client's parser.

A write on one node moves the other's counters; the metrics are served in the
middleware (``metrics.path``) and on a port of their own (``metrics.port``); a
refused frame is counted by its reason; and without ``[metrics]`` the core never
imports prometheus_client.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.polling import wait_for
from tests.support.servers import HOST, Cluster, Server, Servers, free_port, running, uvicorn

Samples = dict[str, float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Every sample by name (labels folded into the name), and each family's type."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples, types


def scrape(port: int, path: str = "/metrics") -> tuple[Samples, dict[str, str]]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        assert response.getheader("Content-Type", "").startswith("text/plain")
        return parse(body)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Server, Server, int]]:
    """Two nodes serving /metrics; node1 also on a port of its own (returned third)."""
    cluster = Cluster()
    port = free_port()
    settings = {
        "METRICS__PATH": "/metrics",
        "VALVES__STATUS__PATH": "/cluster-status",
        "VALVES__HEALTH__LIVENESS_PATH": "/live",
        "VALVES__HEALTH__READINESS_PATH": "/ready",
    }
    with running() as servers:
        node1 = start(servers, "n1", cluster.env("n1", **settings, METRICS__PORT=str(port)))
        node1.wait_healthy()
        node2 = start(servers, "n2", cluster.env("n2", **settings))
        node2.wait_healthy()
        node1.wait_members(["n2"])
        node2.wait_members(["n1"])
        yield node1, node2, port


def start(servers: Servers, route: str, env: dict[str, str]) -> Server:
    return servers.start(uvicorn(route, env))


@pytest.mark.network
def test_a_write_on_one_node_moves_the_others_replication_metrics(
    nodes: tuple[Server, Server, int],
) -> None:
    node1, node2, _ = nodes
    before, types = scrape(node2.port)
    assert types["clustersession_replication_deltas_received"] == "counter"
    assert types["clustersession_replication_lag_seconds"] == "histogram"
    assert types["clustersession_channel_ack_latency_seconds"] == "histogram"
    assert types["clustersession_sessions_active"] == "gauge"
    assert before["clustersession_members"] == 1

    written = node1.request("POST", "/update", json_body={"user": "ada"})
    assert written.status == 200 and written.cookie is not None

    after: list[Samples] = [before]

    def replicated() -> bool:
        after[0] = scrape(node2.port)[0]
        received = "clustersession_replication_deltas_received_total"
        return after[0][received] > before[received]

    assert wait_for(replicated, 20.0, 0.05), after[0]
    seen = after[0]
    assert seen["clustersession_sessions_active"] >= before["clustersession_sessions_active"] + 1
    lag = "clustersession_replication_lag_seconds"
    assert seen[lag + "_count"] > before[lag + "_count"]
    # On loopback a change is merged well within a minute of its stamp.
    assert seen[lag + "_bucket{le=30.0}"] == seen[lag + "_count"]
    # node2 joined after node1: it fetched the sessions (acknowledged sends, timed).
    assert seen["clustersession_state_transfer_duration_seconds"] >= 0
    assert seen["clustersession_channel_ack_latency_seconds_count"] >= 1

    sender = scrape(node1.port)[0]
    assert sender["clustersession_sessions_created_total"] >= 1
    assert sender["clustersession_replication_deltas_sent_total"] >= 1
    assert sender["clustersession_channel_sent_bytes_total"] > 0
    assert sender["clustersession_state_transfers_served_total"] >= 1


@pytest.mark.network
def test_metrics_on_a_port_of_their_own(nodes: tuple[Server, Server, int]) -> None:
    node1, _, port = nodes
    through_port, _ = scrape(port, "/")
    through_path, _ = scrape(node1.port)
    assert through_port["clustersession_members"] == through_path["clustersession_members"] == 1
    assert "clustersession_replication_deltas_sent_total" in through_port


@pytest.mark.network
def test_a_refused_frame_is_counted_by_its_reason(nodes: tuple[Server, Server, int]) -> None:
    _, node2, _ = nodes
    status = node2.request("GET", "/cluster-status.json").json()
    receiver = status["local"]["port"]
    refused = "clustersession_channel_frames_refused_total{reason=malformed}"
    before = scrape(node2.port)[0][refused]
    with socket.create_connection((HOST, receiver), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"x" * 64)  # not a clustersession frame
        sock.settimeout(5)
        try:
            while sock.recv(4096):
                pass  # until the node closes the connection
        except OSError:
            pass
    assert wait_for(lambda: scrape(node2.port)[0][refused] == before + 1, 10.0, 0.05)
    # The node keeps serving.
    assert node2.request("GET", "/ready").status == 200


def test_the_core_never_imports_prometheus_client_unless_metrics_are_configured() -> None:
    code = textwrap.dedent(
        """
        import sys
        from starlette.applications import Starlette
        from clustersession import ClusterConfig, ClusterSessionMiddleware
        from clustersession.wsgi import ClusterSessionWSGIMiddleware
        ClusterSessionMiddleware(Starlette(), config=ClusterConfig(secret="s" * 16))
        ClusterSessionWSGIMiddleware(lambda e, s: [], config=ClusterConfig(secret="s" * 16))
        assert "prometheus_client" not in sys.modules, "imported without [metrics]"
        config = ClusterConfig.from_env({"CLUSTERSESSION_METRICS__PATH": "/metrics"})
        ClusterSessionMiddleware(Starlette(), secret_key="k", config=config)
        assert "prometheus_client" in sys.modules
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
