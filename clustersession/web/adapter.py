"""``SessionAdapter``: what both middlewares take and build from it.

The ASGI and WSGI middlewares take Starlette's ``SessionMiddleware`` arguments
with its defaults, plus ``config`` and ``listeners``; from them each builds the
same :class:`~.front.SessionFront`, a manager (its own kind: the manager itself
on ASGI, a :class:`~clustersession.sessions.threaded.ManagerThread` on WSGI) and
the status page. This base holds that once; subclasses say how the manager runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from starlette.datastructures import Secret

from ..config import ClusterConfig
from ..sessions.listeners import SessionListener
from ..sessions.manager import ClusterView
from .cookies import SameSite
from .front import SessionFront
from .health import HealthCheck
from .status import StatusPage

if TYPE_CHECKING:
    from .metrics import Metrics


class AdapterManager(Protocol):
    """What the adapter base needs of a manager, however it runs."""

    def may_create(self) -> bool:
        """Whether a request may start a session (``manager.max_active_sessions``)."""

    def view(self) -> ClusterView:
        """What the status page shows."""


App = TypeVar("App")
M = TypeVar("M", bound=AdapterManager)


class SessionAdapter(Generic[App, M]):
    """Starlette's ``SessionMiddleware`` arguments in; front, manager and status page out.

    Without ``config`` the app runs one node and ``max_age`` is also the idle
    timeout; with it, the idle timeout is ``config.manager.max_inactive_interval``,
    the route ``config.jvm_route``, and ``secret_key`` defaults to ``config.secret``.
    ``rolling`` (default ``config.manager.rolling``, starsessions' name) sends the
    cookie again on every response of a live session, reads included.
    """

    def __init__(
        self,
        app: App,
        secret_key: str | Secret | None = None,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,  # 14 days, in seconds
        path: str = "/",
        same_site: SameSite = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        *,
        config: ClusterConfig | None = None,
        listeners: Sequence[SessionListener] = (),
        rolling: bool | None = None,
    ) -> None:
        if secret_key is None and config is None:
            raise TypeError(f"{type(self).__name__} needs secret_key=... or config=...")
        self.app = app
        self.config = config if config is not None else ClusterConfig()
        self.front = SessionFront.from_arguments(
            secret_key=None if secret_key is None else str(secret_key),
            session_cookie=session_cookie,
            max_age=max_age,
            path=path,
            same_site=same_site,
            https_only=https_only,
            domain=domain,
            partitioned=partitioned,
            config=config,
            rolling=rolling,
        )
        self.manager: M = self._build_manager(listeners)
        limited = self.config.manager.max_active_sessions >= 0
        self._may_create = self.manager.may_create if limited else None
        self.status = StatusPage(self.config.valves.status, self.manager, self.config.jvm_route)
        self.health = HealthCheck(self.config.valves.health)
        self.metrics: Metrics | None = None
        """The node's Prometheus metrics, when ``[metrics]`` sets a path or a port."""
        if self.config.metrics.enabled:
            self.metrics = build_metrics(self.config, self._metrics_view)
        # Every path the adapter answers itself: one set lookup per request tells
        # the rest apart (each answer still checks its own path).
        status_path = self.status.path
        served = (
            self.health.liveness_path,
            self.health.readiness_path,
            self.metrics.config.path if self.metrics is not None else None,
            status_path,
            status_path + ".json" if status_path else None,
        )
        self._special_paths = frozenset(path for path in served if path)
        # The admin's max_sessions_per_principal: enforced after a commit when > 0.
        self._principal_limit = self.config.manager.max_sessions_per_principal

    def _metrics_view(self) -> ClusterView | None:
        """The view the metrics read, from any thread (``None``: not started)."""
        raise NotImplementedError

    def _build_manager(self, listeners: Sequence[SessionListener]) -> M:
        """The manager, as this server interface runs it."""
        raise NotImplementedError


def build_metrics(config: ClusterConfig, view: Callable[[], ClusterView | None]) -> Metrics:
    # Imported only here: the core never loads prometheus_client (the [metrics] extra).
    try:
        from .metrics import Metrics
    except ImportError as exc:
        raise ImportError(
            "metrics.path or metrics.port is set, but prometheus_client is not installed: "
            "pip install 'clustersession[metrics]'"
        ) from exc
    return Metrics(config.metrics, view)
