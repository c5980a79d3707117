"""Cluster configs that keep multicast and the receiver on 127.0.0.1, and the test secret."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Final

from clustersession.config import ClusterConfig

SECRET: Final = "test-secret-0123456789"


def random_mcast_port() -> int:
    """A multicast group port for one test: runs that share lo must not share one."""
    return random.randint(46000, 59000)


def random_receiver_port() -> int:
    """A receiver port for one test, below Linux's ephemeral range (32768-60999).

    Outgoing connections take their local ports from that range, so a receiver
    port inside it can be held by one of them ("address already in use").
    """
    return random.randint(20000, 32000)


def loopback_config(
    mcast_port: int, *, frequency: int = 100, drop_time: int = 1000, **top: Any
) -> ClusterConfig:
    """A config whose multicast and receiver stay on 127.0.0.1; ``top`` replaces fields."""
    base = ClusterConfig(secret=SECRET, distributable=True, jvm_route="n")
    membership = replace(
        base.membership,
        port=mcast_port,
        bind="127.0.0.1",
        frequency=frequency,
        drop_time=drop_time,
        address="228.0.0.4",
    )
    receiver = replace(base.receiver, address="127.0.0.1", port=random_receiver_port())
    return replace(base, membership=membership, receiver=receiver, **top)
