"""What a run is asked for (:class:`Options`) and what its figures are held to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

SECTIONS: Final = ("throughput", "lag", "deltas", "state")

# The targets.
TARGET_ASYNC_RATIO: Final = 0.85
TARGET_SYNC_RATIO: Final = 0.80  # issue 11: sync (6) >= 0.80x async (8), group commit
TARGET_LAG_P99_MS: Final = 5.0
TARGET_DELTAS_PER_S: Final = 50_000.0
TARGET_TRANSFER_S: Final = 5.0
TARGET_RSS_MB: Final = 400.0
FULL_SESSIONS: Final = 100_000  # the session count the last two targets are for


@dataclass
class Options:
    duration: float
    rounds: int
    connections: int
    warmup: float
    lag_rate: float
    lag_seconds: float
    deltas: int
    sessions: int
    only: list[str] = field(default_factory=list)
    json_path: Path | None = None
    logs: Path | None = None
    strict: bool = False
