"""``RateLimitedLog``: warnings that a failure storm cannot turn into a log flood."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """At most one warning per ``interval`` seconds per key; the rest are counted.

    The next warning that gets through says how many were held back, so the
    log still tells how often it happened.
    """

    def __init__(self, logger: logging.Logger, interval: float = 5.0) -> None:
        self._logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless ``key`` was logged less than ``interval`` ago."""
        now = time.monotonic()
        if now - self._last.get(key, float("-inf")) < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        suffix = f" ({suppressed} more since the last report)" if suppressed else ""
        self._logger.warning(message + suffix, *args)
