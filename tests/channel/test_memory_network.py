"""The in-memory network: membership, send semantics, each fault, determinism."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clustersession.channel import ChannelError, ChannelMessage
from clustersession.channel import options as opts
from clustersession.channel.api import Channel
from clustersession.channel.errors import RemoteProcessError
from clustersession.channel.testing import (
    InMemoryChannel,
    InMemoryNetwork,
    NetworkNotSettled,
    deliveries,
)
from clustersession.config import ClusterConfig

from .conftest import Events

pytestmark = pytest.mark.anyio


class Inbox:
    """What one channel received, as ``(sender route, payload)``."""

    def __init__(self, channel: InMemoryChannel) -> None:
        self.messages: list[tuple[str, bytes]] = []
        channel.add_listener(self.received)

    def received(self, message: ChannelMessage) -> None:
        self.messages.append((message.sender.route, message.payload))

    @property
    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.messages]


def config(route: str, **top: object) -> ClusterConfig:
    return replace(ClusterConfig(jvm_route=route), **top)  # type: ignore[arg-type]


async def started(
    network: InMemoryNetwork, routes: str
) -> tuple[list[InMemoryChannel], list[Inbox], list[Events]]:
    channels, inboxes, events = [], [], []
    for route in routes:
        channel = network.channel(config(route))
        inboxes.append(Inbox(channel))
        events.append(Events())
        channel.add_membership_listener(events[-1])
        await channel.start()
        channels.append(channel)
    return channels, inboxes, events


def test_an_in_memory_channel_is_a_channel() -> None:
    channel: Channel = InMemoryNetwork().channel(config("a"))  # checked by mypy too
    assert channel.members == []


async def test_members_join_oldest_first_and_leave_or_fail() -> None:
    network = InMemoryNetwork(seed=1)
    (a, b, c), _, (ea, _eb, ec) = await started(network, "abc")
    assert [m.route for m in c.members] == ["a", "b"]
    assert [m.route for m in a.members] == ["b", "c"]
    assert [m.route for m in ea.added] == ["b", "c"]
    assert [m.route for m in ec.added] == ["a", "b"]  # told of the oldest first
    await b.stop()
    assert [(m.route, reason) for m, reason, _ in ea.removed] == [("b", "left the group")]
    network.kill(c)
    assert [(m.route, reason) for m, reason, _ in ea.removed][-1] == ("c", "failed")
    assert a.members == [] and c.members == []
    await c.stop()  # a crashed channel's stop is a no-op: nobody hears of it twice
    assert len(ea.removed) == 2


async def test_other_domains_are_not_members() -> None:
    network = InMemoryNetwork()
    a = network.channel(config("a"))
    other = ClusterConfig(jvm_route="x")
    x = network.channel(replace(other, membership=replace(other.membership, domain="other")))
    await a.start()
    await x.start()
    assert a.members == [] and x.members == []


async def test_asynchronous_send_returns_at_once_and_settle_delivers() -> None:
    network = InMemoryNetwork()
    (a, _b, _c), (_, inbox_b, inbox_c), _ = await started(network, "abc")
    await a.send(None, b"hello", opts.ASYNCHRONOUS)
    assert inbox_b.messages == []  # queued, not delivered yet
    await network.settle()
    assert inbox_b.messages == inbox_c.messages == [("a", b"hello")]
    assert network.in_flight == 0


async def test_use_ack_returns_once_received_and_sync_ack_once_processed() -> None:
    network = InMemoryNetwork()
    (a, b), (_, inbox), _ = await started(network, "ab")
    await a.send([b.local], b"received", opts.USE_ACK)
    # Acknowledged on receipt: the listener is a task that may not have run yet.
    await network.settle()
    assert inbox.payloads == [b"received"]
    await a.send([b.local], b"processed", opts.USE_ACK | opts.SYNC_ACK)
    assert inbox.payloads == [b"received", b"processed"]  # no settle needed


async def test_a_failing_listener_fails_a_sync_ack_send_for_that_member() -> None:
    network = InMemoryNetwork()
    (a, b, c), _, _ = await started(network, "abc")

    def broken(message: ChannelMessage) -> None:
        raise RuntimeError("boom")

    b.add_listener(broken)
    with pytest.raises(ChannelError) as caught:
        await a.send(None, b"x", opts.USE_ACK | opts.SYNC_ACK)
    assert list(caught.value.members) == [b.local]
    assert isinstance(caught.value.failed[b.local], RemoteProcessError)
    await a.send([c.local], b"x", opts.USE_ACK | opts.SYNC_ACK)  # c is fine


async def test_a_dropped_acknowledged_send_names_the_member() -> None:
    network = InMemoryNetwork(drop=1.0)
    (a, b), (_, inbox), _ = await started(network, "ab")
    with pytest.raises(ChannelError) as caught:
        await a.send(None, b"lost", opts.USE_ACK)
    assert list(caught.value.members) == [b.local]
    await a.send(None, b"lost too", opts.ASYNCHRONOUS)  # nobody waits: no error
    await network.settle()
    assert inbox.messages == []
    assert [e.kind for e in network.history] == ["dropped", "dropped"]
    assert a.stats().peers[b.local.id].failed_sends == 2


async def test_a_partition_cuts_links_between_groups_until_healed() -> None:
    network = InMemoryNetwork()
    (a, b, c), (_, inbox_b, inbox_c), _ = await started(network, "abc")
    network.partition([a, c], [b])
    assert [m.route for m in a.members] == ["b", "c"]  # membership is unchanged
    with pytest.raises(ChannelError) as caught:
        await a.send(None, b"1", opts.USE_ACK)
    assert list(caught.value.members) == [b.local]  # c got it
    network.heal()
    await a.send(None, b"2", opts.USE_ACK | opts.SYNC_ACK)
    assert inbox_b.payloads == [b"2"]
    assert inbox_c.payloads == [b"1", b"2"]


async def test_a_channel_in_no_group_is_cut_off_from_everyone() -> None:
    network = InMemoryNetwork()
    (a, b, c), _, _ = await started(network, "abc")
    network.partition([a, b])
    with pytest.raises(ChannelError) as caught:
        await a.send(None, b"x", opts.USE_ACK)
    assert list(caught.value.members) == [c.local]


async def test_a_killed_member_loses_what_it_had_in_flight() -> None:
    network = InMemoryNetwork()
    (a, b), (_, inbox), _ = await started(network, "ab")
    await a.send(None, b"never", opts.ASYNCHRONOUS)
    network.kill(a)
    await network.settle()
    assert inbox.messages == []
    with pytest.raises(ChannelError):  # and a send to it fails
        await b.send([a.local], b"?", opts.USE_ACK)


async def test_messages_in_flight_from_a_member_that_left_still_arrive() -> None:
    network = InMemoryNetwork()
    (a, _b), (_, inbox), _ = await started(network, "ab")
    await a.send(None, b"last words", opts.ASYNCHRONOUS)
    await a.stop()
    await network.settle()
    assert inbox.payloads == [b"last words"]


async def test_duplicate_delivers_each_message_twice() -> None:
    network = InMemoryNetwork(duplicate=1.0)
    (a, _b), (_, inbox), _ = await started(network, "ab")
    for i in range(5):
        await a.send(None, bytes([i]), opts.ASYNCHRONOUS)
    await network.settle()
    assert sorted(inbox.payloads) == sorted([bytes([i]) for i in range(5)] * 2)


async def test_without_faults_order_is_kept_and_reorder_breaks_it() -> None:
    sent = [bytes([i]) for i in range(30)]
    for reorder, in_order in ((0.0, True), (1.0, False)):
        network = InMemoryNetwork(seed=3, reorder=reorder)
        (a, _b), (_, inbox), _ = await started(network, "ab")
        for payload in sent:
            await a.send(None, payload, opts.ASYNCHRONOUS)
        await network.settle()
        assert sorted(inbox.payloads) == sent  # every one arrives, once
        assert (inbox.payloads == sent) is in_order


async def test_delay_holds_messages_back_but_delivers_them() -> None:
    network = InMemoryNetwork(seed=5, delay=0.5, max_delay=10)
    (a, _b), (_, inbox), _ = await started(network, "ab")
    sent = [bytes([i]) for i in range(30)]
    for payload in sent:
        await a.send(None, payload, opts.ASYNCHRONOUS)
    await network.settle()
    assert sorted(inbox.payloads) == sent
    assert inbox.payloads != sent  # later ones overtook delayed ones
    assert any(e.kind == "delayed" for e in network.history)


async def run_script(seed: int) -> list[tuple[str, str, int]]:
    """The same sends, under every fault at once; what was delivered, in order."""
    network = InMemoryNetwork(seed, drop=0.2, duplicate=0.2, reorder=0.3, delay=0.2)
    (a, b, c), _, _ = await started(network, "abc")
    for i in range(40):
        sender = (a, b, c)[i % 3]
        await sender.send(None, f"m{i}".encode(), opts.ASYNCHRONOUS)
    await network.settle()
    return deliveries(network.history)


async def test_the_same_seed_gives_the_same_deliveries_and_another_does_not() -> None:
    first = await run_script(11)
    assert first == await run_script(11)
    assert first != await run_script(12)


async def test_oversized_payloads_are_refused_as_by_group_channel() -> None:
    network = InMemoryNetwork()
    small = ClusterConfig(jvm_route="a")
    small = replace(small, receiver=replace(small.receiver, max_message_size=2000))
    a = network.channel(small)
    b = network.channel(config("b"))
    await a.start()
    await b.start()
    await a.send(None, bytes(2000 - 64), opts.USE_ACK)
    with pytest.raises(ValueError, match="exceeds the limit of 1936 bytes"):
        await a.send(None, bytes(2000 - 63), opts.USE_ACK)
    with pytest.raises(ValueError, match="SYNC_ACK"):
        await a.send(None, b"x", opts.SYNC_ACK)


async def test_stats_count_traffic_per_peer() -> None:
    network = InMemoryNetwork()
    (a, b, c), _, _ = await started(network, "abc")
    await a.send(None, b"12345", opts.USE_ACK | opts.SYNC_ACK)
    await a.send([b.local], b"67", opts.ASYNCHRONOUS)
    await network.settle()
    to_b = a.stats().peers[b.local.id]
    assert (to_b.messages_sent, to_b.bytes_sent, to_b.acks) == (2, 7, 1)
    assert a.stats().peers[c.local.id].messages_sent == 1
    from_a = b.stats().peers[a.local.id]
    assert (from_a.messages_received, from_a.bytes_received) == (2, 7)
    stats = b.stats()
    assert (stats.messages_received, stats.members, stats.members_added) == (2, 2, 2)


async def test_settle_raises_when_messages_never_stop() -> None:
    network = InMemoryNetwork(seed=9)
    (a, b), _, _ = await started(network, "ab")

    async def echo_from(channel: InMemoryChannel) -> None:
        async def echo(message: ChannelMessage) -> None:
            await channel.send(None, message.payload, opts.ASYNCHRONOUS)

        channel.add_listener(echo)

    await echo_from(a)
    await echo_from(b)
    await a.send(None, b"ping", opts.ASYNCHRONOUS)
    with pytest.raises(NetworkNotSettled, match="seed 9"):
        await network.settle(max_iterations=500)
    network.kill(a)  # ends the ping-pong
    await network.settle()
