"""Fixtures for multi-host tests: skipped (with the reason) where namespaces are unavailable.

``network``/``network4`` (harness in ``network.py``) serve the channel and replication
tests; ``netcluster``/``netcluster_factory`` use ``netns.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pytest

from .netns import NetnsCluster, netns_available
from .network import Network, unavailable_reason

_REASON = unavailable_reason()


@pytest.fixture
def network() -> Iterator[Network]:
    if _REASON is not None:
        pytest.skip(_REASON)
    with Network(3) as net:
        yield net


@pytest.fixture
def network4() -> Iterator[Network]:
    if _REASON is not None:
        pytest.skip(_REASON)
    with Network(4) as net:
        yield net


class NetclusterFactory(Protocol):
    """Builds a running :class:`NetnsCluster` that is torn down after the test."""

    def __call__(self, hosts: int = 3, *, subnet: str = ..., lb: bool = ...) -> NetnsCluster: ...


@pytest.fixture
def netcluster_factory() -> Iterator[NetclusterFactory]:
    """``netcluster_factory(hosts=4, lb=True)``: a running cluster, torn down after the test
    (even if it failed). Skips with the reason where namespaces are unavailable."""
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    clusters: list[NetnsCluster] = []

    def make(hosts: int = 3, *, subnet: str = "10.77.0", lb: bool = False) -> NetnsCluster:
        cluster = NetnsCluster(hosts, subnet=subnet, lb=lb)
        clusters.append(cluster)  # registered first: a failing up() is cleaned up too
        cluster.up()
        return cluster

    try:
        yield make
    finally:
        for cluster in reversed(clusters):
            cluster.down()


@pytest.fixture
def netcluster(netcluster_factory: NetclusterFactory) -> NetnsCluster:
    """Three running hosts ``node1..node3`` (``10.77.0.11..13``) on one bridge."""
    return netcluster_factory(3)
