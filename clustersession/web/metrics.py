"""Prometheus metrics of one node: the ``clustersession[metrics]`` extra.

Only imported when ``[metrics]`` sets a path or a port, so the core never loads
``prometheus_client``. Nothing is counted here: at each scrape
:class:`ClusterCollector` reads the node's :class:`~..sessions.manager.ClusterView`
(the counters the status page shows, the channel's and the timings' histograms)
and turns it into metric families, so requests and replication pay nothing for
metrics. Every name is listed in ``docs/operations.md``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from ..channel.histogram import HistogramSnapshot
from ..config.sections import MetricsConfig
from ..sessions.manager import ClusterView

PREFIX = "clustersession_"

SCRAPE_TIMEOUT = 10.0  # seconds a scrape on the port waits for the manager's loop

ViewSource = Callable[[], ClusterView | None]
"""Gives the node's view, from any thread (``None``: the manager has not started)."""


class ClusterCollector(Collector):
    """Metric families from the node's view, built at scrape time."""

    def __init__(self, view: ViewSource) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view = self._view()
        if view is None:
            return
        yield _gauge("sessions_active", "Sessions held by this node", view.sessions)
        yield _counter("sessions_created", "Sessions created by this node's requests", view.created)
        yield _counter("sessions_expired", "Sessions this node removed as idle", view.expired)
        yield _counter(
            "sessions_rejected",
            "New sessions refused by manager.max_active_sessions",
            view.rejected_sessions,
        )
        yield _gauge("sessions_tombstones", "Invalidated ids remembered", view.tombstones)
        if view.replication is None or view.channel is None:
            return
        yield _gauge("members", "Other members this node sees", len(view.members))
        yield from _replication(view)
        yield from _channel(view)


def _replication(view: ClusterView) -> Iterator[Metric]:
    replication = view.replication
    assert replication is not None
    c = replication.counters
    yield _counter("replication_deltas_sent", "Session changes sent to members", c.deltas_sent)
    yield _counter(
        "replication_deltas_received", "Session changes received from members", c.deltas_received
    )
    yield _counter(
        "replication_failures",
        "DELTA sends that failed (anti-entropy repairs)",
        c.replication_failures,
    )
    yield _counter("replication_gaps", "Gaps found in members' DELTA numbering", c.gaps_detected)
    yield _counter(
        "replication_bad_messages", "Session messages or changes refused", c.bad_messages
    )
    yield _counter("anti_entropy_rounds", "Digest exchanges with members", c.anti_entropy_rounds)
    yield _counter("anti_entropy_repairs", "Sessions repaired by anti-entropy", c.sessions_repaired)
    yield _counter(
        "state_transfers_served",
        "State transfers sent to joining members",
        c.state_transfers_served,
    )
    if replication.state_transfer_seconds is not None:
        yield _gauge(
            "state_transfer_duration_seconds",
            "How long this node's state transfer took",
            replication.state_transfer_seconds,
        )
    if replication.lag is not None:
        yield _histogram(
            "replication_lag_seconds",
            "From a change's stamp on the writer to its merge here",
            replication.lag,
        )


def _channel(view: ClusterView) -> Iterator[Metric]:
    stats = view.channel
    assert stats is not None
    peers = stats.peers.values()
    yield _counter(
        "channel_sent_messages", "Messages sent to members", sum(p.messages_sent for p in peers)
    )
    yield _counter("channel_sent_bytes", "Bytes sent to members", sum(p.bytes_sent for p in peers))
    yield _counter("channel_received_messages", "Messages received", stats.messages_received)
    yield _counter("channel_received_bytes", "Bytes received", stats.bytes_received)
    yield _counter(
        "channel_send_failures", "Sends that did not reach a member", stats.send_failures
    )
    refused = CounterMetricFamily(
        PREFIX + "channel_frames_refused",
        "Frames refused (connection closed), by reason",
        labels=["reason"],
    )
    for reason in ("auth", "oversize", "malformed"):
        refused.add_metric([reason], stats.refused_by_reason.get(reason, 0))
    yield refused
    yield _counter(
        "channel_heartbeats_refused", "Membership heartbeats refused", stats.refused_heartbeats
    )
    yield _counter("members_joined", "Members that joined", stats.members_added)
    yield _counter("members_left", "Members that left or failed", stats.members_removed)
    if stats.ack_latency is not None:
        yield _histogram(
            "channel_ack_latency_seconds", "Round trip of acknowledged sends", stats.ack_latency
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, documentation, value=value)


def _histogram(name: str, documentation: str, snapshot: HistogramSnapshot) -> Metric:
    buckets: list[tuple[str, float]] = [
        (repr(float(bound)), float(count))
        for bound, count in zip(snapshot.bounds, snapshot.cumulative, strict=True)
    ]
    buckets.append(("+Inf", float(snapshot.count)))
    return HistogramMetricFamily(
        PREFIX + name, documentation, buckets=buckets, sum_value=snapshot.sum
    )


class Metrics:
    """A node's metrics: the exposition text for the middleware, or a port of their own."""

    content_type = CONTENT_TYPE_LATEST
    """The content type of :meth:`exposition` (Prometheus' text format)."""

    def __init__(self, config: MetricsConfig, view: ViewSource) -> None:
        self.config = config
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ClusterCollector(view))
        self._server: tuple[WSGIServer, threading.Thread] | None = None

    def matches(self, path: str) -> bool:
        """Whether a request path is the metrics path."""
        return bool(self.config.path) and path == self.config.path

    def exposition(self) -> bytes:
        """The metrics, in the Prometheus text format."""
        return generate_latest(self.registry)

    def serve_port(self) -> None:
        """Open ``metrics.port`` (a thread of prometheus_client's), if set and not yet open."""
        if self.config.port and self._server is None:
            self._server = start_http_server(
                self.config.port, self.config.host, registry=self.registry
            )

    def close_port(self) -> None:
        """Close the port, if open."""
        server, self._server = self._server, None
        if server is not None:
            server[0].shutdown()
            server[0].server_close()


def call_on_loop(loop: asyncio.AbstractEventLoop, read: Callable[[], ClusterView]) -> ClusterView:
    """``read()`` run on ``loop`` (the manager's, which owns what it reads), from any thread."""
    try:
        if asyncio.get_running_loop() is loop:
            return read()
    except RuntimeError:
        pass  # no loop in this thread: the port's server thread
    future: concurrent.futures.Future[ClusterView] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(read())
        except BaseException as exc:
            future.set_exception(exc)

    loop.call_soon_threadsafe(run)
    return future.result(timeout=SCRAPE_TIMEOUT)
