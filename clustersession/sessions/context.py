"""``ReplicationContext``: what the parts of a replicating manager share."""

from __future__ import annotations

from dataclasses import dataclass

from ..channel import Channel
from ..config import ClusterConfig
from .manager import ReplicationCounters, ReplicationTimings
from .stamped_store import StampedStore


@dataclass(frozen=True, slots=True)
class ReplicationContext:
    """This node's sessions, the channel to the members, the config, counters and timings.

    Replication, anti-entropy, state transfer and keep-alive each take one, so
    they agree on them all by construction.
    """

    sessions: StampedStore
    channel: Channel
    config: ClusterConfig
    counters: ReplicationCounters
    timings: ReplicationTimings
