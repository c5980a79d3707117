"""Fixtures for multi-host tests: skipped (with the reason) where namespaces are unavailable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .network import Network, unavailable_reason

_REASON = unavailable_reason()


def _network(hosts: int, *, lb: bool = False) -> Iterator[Network]:
    if _REASON is not None:
        pytest.skip(_REASON)
    with Network(hosts, lb=lb) as net:
        yield net


@pytest.fixture
def network() -> Iterator[Network]:
    """Three hosts, node1..node3."""
    yield from _network(3)


@pytest.fixture
def network4() -> Iterator[Network]:
    """Four hosts, node1..node4."""
    yield from _network(4)


@pytest.fixture
def network_with_lb() -> Iterator[Network]:
    """Three hosts and a load-balancer host."""
    yield from _network(3, lb=True)


@pytest.fixture
def network5() -> Iterator[Network]:
    """Five hosts, node1..node5."""
    yield from _network(5)
