"""A hybrid logical clock: the stamps that order writes across nodes.

A stamp is one integer: ``(hlc << 32) | node``, where ``hlc`` is wall-clock time
in units of 1/65536 ms (milliseconds in its upper bits, the fraction of the
millisecond in the lower 16), raised by one whenever it would not pass the last
stamp issued or observed (the logical counter), and ``node`` is 32 bits of this
node's member id. Stamps of one node always increase, a node that hears a later
stamp moves past it, and no two nodes ever issue the same stamp, so "the highest
stamp wins" is a deterministic order everywhere, even with skewed clocks.

The fraction matters: with whole milliseconds, a user's write on one node and
their next write on another within the same millisecond (before the first one's
delta arrived) were ordered by the two nodes' counters and ids, and the later
write could lose. Now two writes whose clocks read a microsecond apart are in
the order the clocks say.
"""

from __future__ import annotations

import time
from collections.abc import Callable

NODE_BITS = 32
_NODE_MASK = (1 << NODE_BITS) - 1
_UNITS_PER_SECOND = 1000 << 16  # hlc units: 1/65536 ms, whole milliseconds << 16


class HybridClock:
    """Issues stamps for one node; :meth:`observe` every stamp received."""

    def __init__(self, node: int, wall: Callable[[], float] = time.time) -> None:
        self.node = node & _NODE_MASK
        self.wall = wall
        self._last = 0

    def stamp(self) -> int:
        """A stamp greater than every stamp issued or observed here."""
        last = self._last + 1
        physical = int(self.wall() * _UNITS_PER_SECOND)
        if physical > last:
            last = physical
        self._last = last
        return (last << NODE_BITS) | self.node

    def observe(self, stamp: int) -> None:
        """Move past a stamp made elsewhere."""
        hlc = stamp >> NODE_BITS
        if hlc > self._last:
            self._last = hlc


def stamp_time(stamp: int) -> float:
    """The wall-clock seconds a stamp was issued at (approximately)."""
    return (stamp >> (NODE_BITS + 16)) / 1000
