"""Replication protocol scenarios on the in-memory network: no sockets, no sleeps.

Lost deltas, concurrent writes, partitions, joins and tombstones, with the faults
made on purpose (docs/consistency.md says what must hold). The middleware-level
scenarios stay on real sockets in test_replication.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from clustersession.channel import ChannelMessage
from clustersession.channel import options as opts
from clustersession.sessions.change import Change
from clustersession.sessions.delta_manager import DeltaManager
from clustersession.sessions.wire import Kind, Message, encode

from .memnet import (
    Cluster,
    create,
    divergence,
    invalidate,
    regenerate,
    remove,
    values,
    write,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    made = Cluster(seed=1)
    yield made
    await made.stop()


async def test_a_write_reaches_every_node(cluster: Cluster) -> None:
    a, b, c = [await cluster.start(r) for r in "abc"]
    await a.commit([create("s", "a", user="alice")])
    await cluster.network.settle()
    assert values(b, "s") == values(c, "s") == {"user": "alice"}


async def test_a_lost_delta_is_repaired_when_the_next_one_shows_the_gap(cluster: Cluster) -> None:
    a, b = await cluster.start("a"), await cluster.start("b")
    await a.commit([create("s", "a", v=1)])
    await cluster.network.settle()
    cluster.network.drop = 1.0
    await a.commit([write("s", "a", v=2, lost=True)])
    await cluster.network.settle()
    assert values(b, "s") == {"v": 1}  # lost on the way
    cluster.network.drop = 0.0
    await a.commit([write("s", "a", v=3)])  # b sees a number skipped
    await cluster.network.settle()
    assert b.counters.gaps_detected == 1
    assert values(b, "s") == {"v": 3, "lost": True}
    assert divergence([a, b]) == ""


async def test_concurrent_writes_converge_and_disjoint_keys_survive(cluster: Cluster) -> None:
    nodes = [await cluster.start(r) for r in "abc"]
    await nodes[0].commit([create("s", "a", k=0)])
    await cluster.network.settle()
    network = cluster.network
    network.reorder, network.duplicate, network.delay = 1.0, 0.5, 0.3
    # Every node writes before any delta arrives anywhere: truly concurrent.
    for round_ in range(5):
        for i, node in enumerate(nodes):
            await node.commit([write("s", "a", k=i * 10 + round_, **{f"own{i}": round_})])
    await network.settle()
    assert divergence(nodes) == ""
    final = values(nodes[1], "s")
    assert final is not None
    assert (final["own0"], final["own1"], final["own2"]) == (4, 4, 4)
    assert final["k"] in {4, 14, 24}  # one of the last writes, the same everywhere


async def test_a_partition_is_healed_by_anti_entropy(cluster: Cluster) -> None:
    a, b, c = [await cluster.start(r) for r in "abc"]
    await a.commit([create("s", "a", k=0), create("dead", "a", x=1)])
    await cluster.network.settle()
    cluster.partition([a], [b, c])
    await a.commit([write("s", "a", left=1), invalidate("dead", "a")])
    await b.commit([write("s", "a", right=2), create("t", "b", y=2)])
    await c.commit([remove("s", "a", "k")])
    await cluster.network.settle()
    assert values(b, "s") == {"right": 2}  # nothing crossed
    cluster.network.heal()
    # Nobody writes after the heal, so no gap shows: the periodic rounds repair.
    await cluster.anti_entropy()
    assert divergence([a, b, c]) == ""
    for node in (a, b, c):
        assert values(node, "s") == {"left": 1, "right": 2}
        assert values(node, "t") == {"y": 2}
        assert values(node, "dead") is None


async def test_a_joining_node_gets_every_session_and_dead_id_in_chunks(cluster: Cluster) -> None:
    a = await cluster.start("a", send_all_sessions_size=7)
    await a.commit([create(f"s{i}", "a", i=i) for i in range(50)])
    await a.commit([invalidate("s0", "a")])
    b = await cluster.start("b", send_all_sessions_size=7)  # returns after the transfer
    assert b.state_transfer.transferred is True
    assert len(b.store) == 49 and values(b, "s7") == {"i": 7}
    assert divergence([a, b]) == ""


async def test_writes_during_a_state_transfer_are_not_lost(cluster: Cluster) -> None:
    a = await cluster.start("a", send_all_sessions_size=5)
    await a.commit([create(f"s{i}", "a", i=i) for i in range(40)])
    cluster.network.reorder = 0.5
    joining = asyncio.create_task(cluster.start("b", send_all_sessions_size=5))
    for i in range(40):  # each write lands somewhere in the transfer
        await a.commit([write(f"s{i}", "a", during=True)])
        await asyncio.sleep(0)  # one loop iteration: the transfer moves on
    b = await joining
    await cluster.network.settle()
    assert b.state_transfer.transferred is True
    assert values(b, "s39") == {"i": 39, "during": True}
    assert divergence([a, b]) == ""


async def test_an_invalidated_id_never_comes_back_after_a_partition(cluster: Cluster) -> None:
    a, b = await cluster.start("a"), await cluster.start("b")
    await a.commit([create("s", "a", v=1)])
    await cluster.network.settle()
    cluster.partition([a], [b])
    await a.commit([invalidate("s", "a")])
    await b.commit([write("s", "a", v=2)])  # b never heard: it writes on
    await cluster.network.settle()
    cluster.network.heal()
    await b.commit([write("s", "a", v=3)])  # a sees the gap and repairs
    await cluster.network.settle()
    await cluster.anti_entropy()
    assert values(a, "s") is None and values(b, "s") is None
    assert divergence([a, b]) == ""


async def test_a_retired_id_never_comes_back_after_a_partition(cluster: Cluster) -> None:
    a, b = await cluster.start("a"), await cluster.start("b")
    await a.commit([create("old", "a", user="alice")])
    await cluster.network.settle()
    cluster.partition([a], [b])
    await a.commit([regenerate("old", "new", "a")])
    await b.commit([write("old", "a", cart=1)])
    await cluster.network.settle()
    cluster.network.heal()
    await cluster.anti_entropy()
    assert divergence([a, b]) == ""
    for node in (a, b):
        assert values(node, "old") is None
        assert values(node, "new") is not None
        assert values(node, "new") == values(a, "new")


async def test_a_late_duplicate_does_not_resurrect_an_invalidated_session(
    cluster: Cluster,
) -> None:
    a, b = await cluster.start("a"), await cluster.start("b")
    captured: list[bytes] = []

    def capture(message: ChannelMessage) -> None:
        captured.append(message.payload)

    b.channel.add_listener(capture)
    await a.commit([create("s", "a", v=1)])
    await a.commit([regenerate("s", "s2", "a")])
    await cluster.network.settle()
    await a.commit([invalidate("s2", "a")])
    await cluster.network.settle()
    assert values(b, "s2") is None
    for payload in list(captured):  # every earlier delta again, very late
        await a.channel.send([b.channel.local], payload, opts.USE_ACK | opts.SYNC_ACK)
    await cluster.network.settle()
    assert values(b, "s") is None and values(b, "s2") is None
    assert divergence([a, b]) == ""


async def test_a_crashed_node_leaves_the_others_consistent(cluster: Cluster) -> None:
    a, b, c = [await cluster.start(r) for r in "abc"]
    await a.commit([create("s", "a", v=1)])
    await cluster.network.settle()
    await a.commit([write("s", "a", v=2)])
    cluster.network.kill(a.channel)  # before its delta left: lost with it
    await b.commit([write("s", "a", w=3)])
    await cluster.network.settle()
    assert [m.route for m in b.channel.members] == ["c"]
    assert not b.route_is_alive("a")
    assert values(b, "s") == values(c, "s") == {"v": 1, "w": 3}
    assert divergence([b, c]) == ""


async def test_sessions_outlive_a_node_that_stops(cluster: Cluster) -> None:
    a, b = await cluster.start("a"), await cluster.start("b")
    await a.commit([create("s", "a", v=1)])
    await cluster.network.settle()
    await a.stop()
    assert values(b, "s") == {"v": 1}


async def test_expire_sessions_on_shutdown_invalidates_them_everywhere(cluster: Cluster) -> None:
    a = await cluster.start("a", expire_sessions_on_shutdown=True, send_all_sessions_size=3)
    b = await cluster.start("b")
    c = await cluster.start("c")
    await a.commit([create(f"s{i}", "a", i=i) for i in range(10)])
    await cluster.network.settle()
    assert len(c.store) == 10
    await a.stop()
    await cluster.network.settle()
    assert len(b.store) == len(c.store) == 0
    assert len(b.tombstones) == 10
    assert divergence([b, c]) == ""


async def test_sync_mode_commit_returns_after_every_peer_applied_it(cluster: Cluster) -> None:
    a = await cluster.start("a", send_options=6)
    b = await cluster.start("b", send_options=6)
    cluster.network.delay = 1.0  # every message held back a while
    await a.commit([create("s", "a", v=1)])
    assert values(b, "s") == {"v": 1}  # no settle: the commit waited for it


async def test_a_duplicated_delta_is_not_taken_for_a_gap(cluster: Cluster) -> None:
    a, b = await cluster.start("a"), await cluster.start("b")
    await a.commit([create("s", "a", v=0)])
    await cluster.network.settle()
    cluster.network.duplicate = 1.0  # nothing is lost, everything arrives twice
    for i in range(5):
        await a.commit([write("s", "a", v=i)])
        await cluster.network.settle()
    assert values(b, "s") == {"v": 4}
    assert b.counters.gaps_detected == 0


async def test_sync_commits_that_end_while_an_ack_is_awaited_share_the_next_delta(
    cluster: Cluster,
) -> None:
    a = await cluster.start("a", send_options=6)
    b = await cluster.start("b", send_options=6)
    await a.commit([create("s", "a", v=0)])
    await cluster.network.settle()
    cluster.network.delay = 1.0  # every DELTA held back a few loop iterations: ACKs take a while
    cluster.network.max_delay = 50
    delivered_before = deliveries(cluster, a, b)
    # Six requests ending in six successive loop iterations, the first DELTA in flight.
    commits = []
    for i in range(1, 7):
        commits.append(asyncio.ensure_future(a.commit([write("s", "a", **{f"k{i}": i})])))
        await asyncio.sleep(0)  # the next request ends in the next loop iteration
    await asyncio.gather(*commits)
    # Each commit returned after b had it, and b got two DELTAs, not six: the first,
    # then one shared by the five requests that ended while its ACK was awaited.
    assert values(b, "s") == {"v": 0, **{f"k{i}": i for i in range(1, 7)}}
    assert deliveries(cluster, a, b) - delivered_before == 2


def deliveries(cluster: Cluster, sender: DeltaManager, receiver: DeltaManager) -> int:
    """Messages the network delivered from ``sender`` to ``receiver`` so far."""
    return sum(
        1
        for event in cluster.network.history
        if event.kind == "delivered"
        and event.sender == sender.channel.local
        and event.receiver == receiver.channel.local
    )


async def test_a_digest_is_not_answered_again_while_the_answer_is_on_its_way(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by bench/scaling: with 100,000 sessions an answer outlasts the rounds, and
    # every digest that came meanwhile resent all the differing buckets again, until
    # no exchange ended (an 8-node join that never settled).
    a, b = await cluster.start("a"), await cluster.start("b")
    cluster.partition([a], [b])
    await a.commit([create(f"s{i}", "a", i=i) for i in range(50)])
    await cluster.network.settle()
    cluster.network.heal()
    received: list[int] = []
    repair = b.anti_entropy.repair

    def counted(changes: list[Change], dead: list[tuple[str, int]]) -> None:
        received.append(len(changes))
        repair(changes, dead)

    monkeypatch.setattr(b.anti_entropy, "repair", counted)
    stale = encode(Message(Kind.DIGEST, buckets=list(b.store.buckets)))  # b holds nothing
    for _ in range(3):
        await b.channel.send([a.channel.local], stale)
    await cluster.network.settle()
    assert sum(received) == 50  # once, not once per digest
    assert divergence([a, b]) == ""
