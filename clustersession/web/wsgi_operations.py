"""``WSGIOperations``: probes, metrics and the status page, for every WSGI adapter.

The plain WSGI middleware, the Flask interface and the Django engine serve the
same operational endpoints (``valves.health``, ``metrics.path``,
``valves.status``) in front of the app, from one :class:`ManagerThread`. Probes
and metrics are answered before anything waits for the manager (a probe must
get an answer while the state transfer runs); the status page starts it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from ..config import ClusterConfig
from ..sessions.manager import ClusterView
from ..sessions.threaded import ManagerThread
from .adapter import build_metrics
from .health import HealthCheck
from .status import StatusPage

if TYPE_CHECKING:
    from .metrics import Metrics

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Headers = list[tuple[str, str]]
_HTTP_STATUS = {200: "200 OK", 403: "403 Forbidden", 503: "503 Service Unavailable"}
LIVENESS_TIMEOUT = 5.0  # seconds the manager's loop thread has to answer a liveness probe


class StartResponse(Protocol):
    """PEP 3333's ``start_response``."""

    def __call__(
        self, status: str, headers: Headers, exc_info: ExcInfo | None = None, /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WSGIOperations:
    """The node's operational endpoints in front of a WSGI app, over its manager thread."""

    def __init__(
        self,
        manager: ManagerThread,
        status: StatusPage,
        health: HealthCheck,
        metrics: Metrics | None,
    ) -> None:
        self.manager = manager
        self.status = status
        self.health = health
        self.metrics = metrics
        self._metrics_pid: int | None = None

    @classmethod
    def build(cls, config: ClusterConfig, manager: ManagerThread) -> WSGIOperations:
        """The endpoints ``config`` asks for (for adapters that are not a ``SessionAdapter``)."""
        metrics = None
        if config.metrics.enabled:
            metrics = build_metrics(config, lambda: metrics_view(manager))
        return cls(
            manager,
            StatusPage(config.valves.status, manager, config.jvm_route),
            HealthCheck(config.valves.health),
            metrics,
        )

    def answer(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes] | None:
        """The response if the request is for an endpoint, else ``None`` (the app's).

        Also opens ``metrics.port`` once per serving process (after a fork, the
        child's). Only the status page starts the manager: an app's own first
        request does that, with what it knows (Flask's settings).
        """
        path = environ.get("PATH_INFO", "")
        if self.health.matches(path):
            return self._probe(path, start_response)
        metrics = self.metrics
        if metrics is not None:
            if metrics.matches(path):
                return send(start_response, 200, metrics.content_type, metrics.exposition())
            pid = os.getpid()
            if self._metrics_pid != pid:
                self._metrics_pid = pid
                metrics.serve_port()
        if self.status.matches(path):
            self.manager.start()
            return self._status(environ, start_response)
        return None

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """``app`` with the endpoints answered in front of it."""

        def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            answered = self.answer(environ, start_response)
            return app(environ, start_response) if answered is None else answered

        return serve

    def _status(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        answer = self.status.answer(
            environ.get("PATH_INFO", ""),
            client_host=environ.get("REMOTE_ADDR"),
            query_string=environ.get("QUERY_STRING", ""),
            authorization=environ.get("HTTP_AUTHORIZATION", ""),
        )
        return send(start_response, answer.status, answer.content_type, answer.body)

    def _probe(self, path: str, start_response: StartResponse) -> list[bytes]:
        def ready() -> bool:
            self.manager.start_soon()  # a node only probed until ready must still start
            return self.manager.ready

        def live() -> bool:
            return self.manager.responsive(LIVENESS_TIMEOUT)

        answer = self.health.answer(path, live=live, ready=ready)
        return send(start_response, answer.status, answer.content_type, answer.body)


def metrics_view(manager: ManagerThread) -> ClusterView | None:
    """The view the metrics read, from any thread (``None``: not started)."""
    return manager.view() if manager.running else None


def send(start_response: StartResponse, status: int, content_type: str, body: bytes) -> list[bytes]:
    """A whole small response."""
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response(_HTTP_STATUS[status], headers)
    return [body]
