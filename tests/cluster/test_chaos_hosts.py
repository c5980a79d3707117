"""The chaos runs' short versions (``make chaos`` runs the long ones, with figures).

Real uvicorn nodes on namespace hosts and a client on its own host writing
throughout; each fault must lose no acknowledged session or write, resurrect
nothing, remove no live member, and end with every node holding the same sessions.
"""

from __future__ import annotations

import pytest

from bench.chaos import faults, scenarios
from bench.chaos.figures import Figure

from .network import unavailable_reason

pytestmark = pytest.mark.hosts


@pytest.fixture(autouse=True)
def _hosts_and_nftables() -> None:
    reason = unavailable_reason() or faults.available()
    if reason:
        pytest.skip(reason)


def explained(figure: Figure) -> str:
    return f"{figure.lost} {figure.problems} {figure.details}"


def test_nodes_killed_and_restarted_lose_nothing_and_end_identical() -> None:
    figure = scenarios.kill_restart(duration=10, gap=(2.0, 3.0))
    assert figure.details["kills"] >= 2
    assert figure.ok, explained(figure)
    assert figure.convergence_s is not None and figure.convergence_s < 60


def test_a_healed_partition_converges_and_resurrects_nothing() -> None:
    figure = scenarios.partition_heal(duration=8)
    assert figure.ok, explained(figure)
    assert figure.convergence_s is not None and figure.convergence_s < 60


def test_packet_loss_removes_no_member_and_loses_nothing() -> None:
    figure = scenarios.loss_delay(duration=10, delay_ms=0)
    assert figure.ok, explained(figure)
