"""Liveness and readiness answers (``valves.health``), for balancers and orchestrators.

Served by the middleware in front of the app, and before anything waits for the
manager: a probe must get an answer while the state transfer runs. Liveness says
the node's event loop answers; readiness says the node has joined, holds the
cluster's sessions, and is not leaving. The adapters say how they know both.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config.sections import HealthValveConfig
from .status import StatusAnswer

_TEXT = "text/plain; charset=utf-8"


class HealthCheck:
    """The two probe paths of ``valves.health`` and their answers."""

    def __init__(self, config: HealthValveConfig) -> None:
        self.liveness_path = config.liveness_path
        self.readiness_path = config.readiness_path

    def matches(self, path: str) -> bool:
        """Whether a request path is one of the probes."""
        return bool(path) and path in (self.liveness_path, self.readiness_path)

    def answer(
        self, path: str, *, live: Callable[[], bool], ready: Callable[[], bool]
    ) -> StatusAnswer:
        """200 or 503, with a one-word body saying which (only the probe asked is checked)."""
        if path == self.liveness_path:
            ok, good, bad = live(), b"live\n", b"not live\n"
        else:
            ok, good, bad = ready(), b"ready\n", b"not ready\n"
        return StatusAnswer(200, _TEXT, good) if ok else StatusAnswer(503, _TEXT, bad)
