"""Fixtures for multi-host tests: skipped (with the reason) where namespaces are unavailable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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


@pytest.fixture
def network_with_lb() -> Iterator[Network]:
    if _REASON is not None:
        pytest.skip(_REASON)
    with Network(3, lb=True) as net:
        yield net
