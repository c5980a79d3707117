"""``Histogram``: durations counted into fixed buckets, cheaply, for the metrics to export.

The floors count what they time (ACK round trips, replication lag, state
transfers) here, with no metrics library: a scrape reads :meth:`Histogram.snapshot`
and exports it (see ``clustersession.web.metrics``), as Prometheus' own
histograms do (cumulative buckets, a sum and a count).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

# Seconds, from a fast LAN ACK to a slow state transfer (Prometheus' defaults, widened).
DEFAULT_BOUNDS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Counts up to each bound (cumulative, as Prometheus' ``le`` buckets), sum and count."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    """Observations <= each bound, same length as ``bounds`` (``+Inf`` is ``count``)."""
    sum: float
    count: int


class Histogram:
    """Observations in seconds, counted per bucket: ``observe`` is a bisect and two adds."""

    __slots__ = ("_counts", "_sum", "bounds")

    def __init__(self, bounds: Sequence[float] = DEFAULT_BOUNDS) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self._sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (negative values, e.g. from clock skew, count as 0)."""
        value = max(value, 0.0)
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        """The counts now, cumulative."""
        cumulative, total = [], 0
        for count in self._counts[:-1]:
            total += count
            cumulative.append(total)
        return HistogramSnapshot(
            self.bounds, tuple(cumulative), self._sum, total + self._counts[-1]
        )
