"""Static membership: peers from a fixed list, liveness over TCP (no multicast)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clustersession.channel import options
from clustersession.config import ClusterConfig

from ..support.loopback import SECRET, random_receiver_port
from ..support.polling import eventually
from .conftest import ChannelFactory

pytestmark = [pytest.mark.anyio, pytest.mark.network]


def static_configs(count: int) -> list[ClusterConfig]:
    base = ClusterConfig(secret=SECRET, distributable=True, jvm_route="s")
    first = random_receiver_port()
    ports = [first + i for i in range(count)]
    members = tuple(f"127.0.0.1:{port}" for port in ports)
    membership = replace(
        base.membership, kind="static", static_members=members, frequency=100, drop_time=1000
    )
    return [
        replace(
            base,
            membership=membership,
            receiver=replace(base.receiver, address="127.0.0.1", port=port, auto_bind=1),
        )
        for port in ports
    ]


async def test_static_members_find_each_other_and_talk(make_channel: ChannelFactory) -> None:
    configs = static_configs(3)
    channels = [(await make_channel(config))[0] for config in configs]
    assert await eventually(lambda: all(len(c.members) == 2 for c in channels), timeout=3)
    got: list[bytes] = []
    channels[2].add_listener(lambda m: got.append(m.payload))
    await channels[0].send(None, b"hello", options.USE_ACK | options.SYNC_ACK)
    assert got == [b"hello"]


async def test_static_member_that_stops_or_dies_is_removed(make_channel: ChannelFactory) -> None:
    configs = static_configs(3)
    (a, a_events), (b, _), (c, _) = [await make_channel(config) for config in configs]
    assert await eventually(lambda: len(a.members) == 2, timeout=3)
    await b.stop()
    assert await eventually(lambda: [m.id for m in a.members] == [c.local.id], timeout=1)
    assert "left" in a_events.removed[0][1]
    await c.coordinator.receiver.stop()  # dies without a word: its port refuses connections
    assert await eventually(lambda: not a.members, timeout=3)
