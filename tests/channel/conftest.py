"""Channels on loopback: real sockets, real multicast pinned to 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from clustersession.channel.group import GroupChannel
from clustersession.channel.member import Member
from clustersession.config import ClusterConfig

SECRET = "test-secret-0123456789"


class Events:
    """Membership events of one channel, awaitable."""

    def __init__(self) -> None:
        self.added: list[Member] = []
        self.removed: list[tuple[Member, str, float]] = []

    def member_added(self, member: Member) -> None:
        self.added.append(member)

    def member_disappeared(self, member: Member, reason: str) -> None:
        self.removed.append((member, reason, time.monotonic()))


def loopback_config(
    mcast_port: int, *, frequency: int = 100, drop_time: int = 1000, **top: Any
) -> ClusterConfig:
    """A config whose multicast and receiver stay on 127.0.0.1."""
    base = ClusterConfig(secret=SECRET, distributable=True, jvm_route="n")
    membership = replace(
        base.membership,
        port=mcast_port,
        bind="127.0.0.1",
        frequency=frequency,
        drop_time=drop_time,
        address="228.0.0.4",
    )
    receiver = replace(base.receiver, address="127.0.0.1", port=random.randint(20000, 40000))
    return replace(base, membership=membership, receiver=receiver, **top)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


ChannelFactory = Callable[..., Awaitable[tuple[GroupChannel, Events]]]


@pytest.fixture
def mcast_port() -> int:
    # Runs that share lo must not share a group port (research: they collide).
    return random.randint(46000, 59000)


@pytest.fixture
async def make_channel(mcast_port: int) -> AsyncIterator[ChannelFactory]:
    started: list[GroupChannel] = []

    async def factory(
        config: ClusterConfig | None = None, **kwargs: Any
    ) -> tuple[GroupChannel, Events]:
        channel = GroupChannel(config or loopback_config(mcast_port, **kwargs))
        events = Events()
        channel.add_membership_listener(events)
        await channel.start()
        started.append(channel)
        return channel, events

    yield factory
    for channel in reversed(started):
        await channel.stop()
