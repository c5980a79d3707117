"""What a chaos run reports, and the checks behind it: lost sessions and writes,
identical nodes, latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cluster import Attempt


@dataclass
class Figure:
    """One row of docs/reliability.md."""

    scenario: str
    fault: str
    load: str
    lost: dict[str, int]
    """What must be 0 (sessions lost, writes lost, resurrected, false removals, ...)."""
    convergence_s: float | None
    command: str
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every loss counter is 0 and nothing else went wrong."""
        return not self.problems and not any(self.lost.values())


def acknowledged(attempts: Iterable[Attempt]) -> dict[str, tuple[int, float, int]]:
    """Each session the client saw started: token -> (last acknowledged ``n``, when, node)."""
    last: dict[str, tuple[int, float, int]] = {}
    for attempt in attempts:
        if attempt.ok and attempt.token is not None:
            previous = last.get(attempt.token)
            if previous is None or attempt.value > previous[0]:
                last[attempt.token] = (attempt.value, attempt.t, attempt.node)
    return last


@dataclass
class Losses:
    """What the nodes lost of what the client was told was stored."""

    sessions: list[str] = field(default_factory=list)
    """Acknowledged sessions missing on at least one node."""
    writes: list[str] = field(default_factory=list)
    """Sessions whose value on some node is older than the last acknowledged write."""


def losses(
    contents: Sequence[dict[str, dict[str, Any]]], expected: dict[str, tuple[int, float, int]]
) -> Losses:
    """Compare every node's sessions (``ChaosCluster.contents``) with ``expected``."""
    found = Losses()
    for token, (value, _, _) in expected.items():
        held = [c.get(token) for c in contents]
        if any(h is None for h in held):
            found.sessions.append(token)
        elif any(h is not None and h["values"].get("n", -1) < value for h in held):
            found.writes.append(token)
    return found


def replaced(attempts: Iterable[Attempt]) -> int:
    """How many acknowledged requests started a new session in place of the one their
    cookie named (a node that did not know it: across a partition, say)."""
    return sum(1 for a in attempts if a.ok and a.was is not None)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest-rank method (nan if empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency(attempts: Iterable[Attempt]) -> dict[str, float]:
    """Count, p50, p99 and max of the latencies (ms) of ``attempts``."""
    ms = [a.ms for a in attempts]
    return {"requests": len(ms), "p50_ms": round(percentile(ms, 0.5), 1),
            "p99_ms": round(percentile(ms, 0.99), 1),
            "max_ms": round(max(ms), 1) if ms else math.nan}  # fmt: skip


def story(
    token: str,
    expected: dict[str, tuple[int, float, int]],
    contents: Sequence[dict[str, dict[str, Any]]],
    attempts: Sequence[Attempt],
    last: int = 4,
) -> str:
    """What happened to one lost session or write: the value the client was told was
    stored, what each node holds, and the session's last requests (time relative to the
    acknowledged one, node, value, acknowledged, latency) — a failure's evidence."""
    value, when, node = expected[token]
    held = [c.get(token, {}).get("values", {}).get("n") if token in c else None for c in contents]
    mine = [a for a in attempts if token in (a.token, a.was)][-last:]
    requests = ", ".join(
        f"{a.t - when:+.4f}s node{a.node} n={a.value} {'ok' if a.ok else 'failed'} {a.ms:.1f}ms"
        for a in mine
    )
    told = f"acknowledged n={value} by node{node}"
    return f"{token[:8]}: {told}; nodes hold n={held}; last requests: {requests}"
