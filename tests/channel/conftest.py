"""Channels on loopback: real sockets, real multicast pinned to 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from clustersession.channel.group import GroupChannel
from clustersession.channel.member import Member
from clustersession.config import ClusterConfig

from ..support.loopback import loopback_config, random_mcast_port

__all__ = ["ChannelFactory", "Events"]


class Events:
    """Membership events of one channel, awaitable."""

    def __init__(self) -> None:
        self.added: list[Member] = []
        self.removed: list[tuple[Member, str, float]] = []

    def member_added(self, member: Member) -> None:
        self.added.append(member)

    def member_disappeared(self, member: Member, reason: str) -> None:
        self.removed.append((member, reason, time.monotonic()))


ChannelFactory = Callable[..., Awaitable[tuple[GroupChannel, Events]]]


@pytest.fixture
def mcast_port() -> int:
    return random_mcast_port()


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
