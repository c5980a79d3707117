"""The merge makes replicas converge whatever the delivery order; the wire form is checked."""

from __future__ import annotations

import random

import msgpack
import pytest

from clustersession.sessions.change import Change, full_digest, merge, new_record
from clustersession.sessions.clock import HybridClock
from clustersession.sessions.wire import WireError, from_wire, to_wire


def random_changes(seed: int, count: int = 60) -> list[Change]:
    rng = random.Random(seed)
    # Three writers on one simulated wall clock, which ticks now and then: the same
    # seed gives the same stamps (a real clock made a failure depend on timing).
    now = [1_700_000_000.0]
    clocks = [HybridClock(node, wall=lambda: now[0]) for node in (1, 2, 3)]
    changes = []
    for _ in range(count):
        now[0] += rng.choice((0.0, 0.0, 0.001))
        clock = rng.choice(clocks)
        change = Change("tok", accessed_at=rng.uniform(0, 100))
        for _ in range(rng.randint(0, 3)):
            key = rng.choice("abcde")
            if rng.random() < 0.7:
                change.put(key, clock.stamp(), bytes([rng.randint(0, 255)]))
            else:
                change.removed[key] = clock.stamp()
        if rng.random() < 0.2:
            change.interval, change.interval_stamp = rng.randint(1, 100), clock.stamp()
        changes.append(change)
    return changes


def replay(changes: list[Change]) -> tuple[object, ...]:
    record = new_record(Change("tok", accessed_at=0.0), 1800)
    for change in changes:
        merge(record, change)
    return (
        dict(record.attributes),
        dict(record.stamps),
        dict(record.removed),
        record.max_inactive_interval,
        record.last_accessed_at,
    )


@pytest.mark.parametrize("seed", range(100))
def test_any_order_and_duplicates_converge(seed: int) -> None:
    changes = random_changes(seed)
    expected = replay(changes)
    rng = random.Random(seed + 1000)
    for _ in range(5):
        shuffled = changes + rng.sample(changes, 10)  # duplicates too
        rng.shuffle(shuffled)
        assert replay(shuffled) == expected


def test_a_first_change_that_sets_and_then_removes_a_key_leaves_it_removed() -> None:
    # The bulk path for a session's first values must not leave the removal behind.
    record = new_record(Change("t", 0.0), 60)
    change = Change("t", 0.0)
    change.put("a", 10, b"x")
    change.put("b", 11, b"y")
    change.removed["a"] = 12
    merge(record, change)
    assert dict(record.attributes) == {"b": b"y"}
    assert record.stamps == {"b": 11} and record.removed == {"a": 12}
    assert record.digest == full_digest(record)


def test_later_write_wins_and_a_removal_is_not_undone_by_an_older_write() -> None:
    clock = HybridClock(7)
    older, newer, removal = clock.stamp(), clock.stamp(), clock.stamp()
    record = new_record(Change("t", 0.0), 60)
    merge(record, Change("t", 0.0, removed={"k": removal}))
    merge(record, Change("t", 0.0, values={"k": b"new"}, value_stamps={"k": newer}))
    merge(record, Change("t", 0.0, values={"k": b"old"}, value_stamps={"k": older}))
    assert "k" not in record.attributes


def test_a_write_a_microsecond_later_on_another_node_wins_without_a_message() -> None:
    # A user's write on one node, then (the response received) the next on another,
    # within one millisecond and before the first one's delta arrived: the busier
    # node's counter and the higher node id must not make the earlier write win.
    now = [1_700_000_000.0]
    busy, other = HybridClock(2**32 - 1, wall=lambda: now[0]), HybridClock(1, wall=lambda: now[0])
    earlier = max(busy.stamp() for _ in range(50))
    now[0] += 1e-6
    assert other.stamp() > earlier


def test_clock_moves_past_what_it_observes() -> None:
    slow = HybridClock(1, wall=lambda: 1000.0)
    fast = HybridClock(2, wall=lambda: 2000.0)
    remote = fast.stamp()
    slow.observe(remote)
    assert slow.stamp() > remote


def test_wire_round_trip() -> None:
    big = HybridClock(2**32 - 1).stamp()  # real stamps are far beyond 64 bits
    change = Change(
        "tok", 12.5, 10.0, "node1", big, 60, 6, {"a": b"\x01"}, {"a": 7}, {"b": 8}, 0, True, "old"
    )
    assert from_wire(to_wire(change)) == change
    mixed = Change("tok", 1.0, values={"a": b"1", "b": b"2"}, value_stamps={"a": 5, "b": big})
    mixed.removed = {"c": 5, "d": 9}
    assert from_wire(to_wire(mixed)) == mixed


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        ["tok"] * 14,
        [1, 2.0, None, None, None, [], -1, -1, -1, {}, 0, {}, False, None],  # token
        ["t", 2.0, None, None, None, [5], 0, -1, -1, {}, 0, {}, False, None],  # stamp
        ["t", 2.0, None, None, None, [], 0, -1, -1, {}, 0, {}, False, None],  # no stamp 0
        ["t", 2.0, None, None, None, [bytes(12)], -2, -1, -1, {}, 0, {}, False, None],
        ["t", 2.0, None, None, None, [bytes(12)], 0, -1, -1, ["a"], 0, {}, False, None],
        ["t", 2.0, None, None, None, [bytes(12)], 0, -1, -1, {"a": "v"}, 0, {}, False, None],
        ["t", 2.0, None, None, None, [bytes(12)], 0, -1, -1, {b"a": b"v"}, 0, {}, False, None],
        ["t", 2.0, None, None, None, [bytes(12)], 0, -1, -1, {"a": b"v"}, [], {}, False, None],
        ["t", 2.0, None, None, None, [bytes(12)], 0, -1, -1, {"a": b"v"}, 5, {}, False, None],
        ["t", 2.0, None, None, None, [bytes(12)], 0, -1, -1, {}, 0, {"a": 3}, False, None],
        ["t", 2.0, None, None, None, [bytes(12)], 0, -1, -1, {}, 0, ["a"], False, None],
        ["t", 2.0, None, None, None, [bytes(12)], 0, -1, -1, {}, 0, {b"a": 0}, False, None],
        ["t", 2.0, None, None, None, [bytes(12)], 0, -1, -1, {}, 0, {}, 1, None],
    ],
)
def test_malformed_wire_changes_are_refused(data: object) -> None:
    with pytest.raises(WireError):
        from_wire(data)


@pytest.mark.parametrize("seed", range(5))
def test_bucket_digests_agree_when_the_sessions_do(seed: int) -> None:
    from clustersession.sessions.local_manager import LocalManager

    rng = random.Random(seed)
    changes = []
    for token in ("t1", "t2", "t3"):
        for change in random_changes(seed, 20):
            change.token = token
            changes.append(change)
    changes.append(Change("t2", 0.0, invalidated=HybridClock(9).stamp()))
    left, right = LocalManager(), LocalManager()
    for change in changes:
        left.apply(change, remote=True)
    rng.shuffle(changes)
    for change in changes:
        right.apply(change, remote=True)
    assert left.store.buckets == right.store.buckets
    assert {r.token for r in left.store} == {r.token for r in right.store} == {"t1", "t3"}
    assert sorted(left.store.get("t1").attributes.items()) == sorted(
        right.store.get("t1").attributes.items()
    )


def test_a_stamp_of_the_wrong_type_is_a_wire_error() -> None:
    bad = to_wire(Change("t", 1.0, values={"k": b"v"}, value_stamps={"k": 5}))
    bad[2] = [1, 2]  # a list where the stamp's bytes belong
    with pytest.raises(WireError):
        from_wire(bad)


def test_a_plain_write_takes_the_short_form_and_round_trips() -> None:
    stamp = HybridClock(3).stamp()
    write = Change("tok", 2.0, values={"a": b"\x01"}, value_stamps={"a": stamp})
    write.removed = {"b": stamp}
    wire = to_wire(write)
    assert len(wire) == 5
    assert from_wire(wire) == write
    assert from_wire(wire).highest_stamp() == stamp


@pytest.mark.parametrize(
    "data",
    [
        ["t", 1.0, bytes(12), {}, []],  # a zero stamp
        ["t", 1.0, b"\x01" * 11, {}, []],
        ["t", 1.0, b"\x01" * 12, ["a"], []],
        ["t", 1.0, b"\x01" * 12, {"a": "v"}, []],
        ["t", 1.0, b"\x01" * 12, {b"a": b"v"}, []],
        ["t", 1.0, b"\x01" * 12, {}, [1]],
        ["t", 1.0, b"\x01" * 12, {}, {}],
        [5, 1.0, b"\x01" * 12, {}, []],
    ],
)
def test_malformed_short_writes_are_refused(data: object) -> None:
    with pytest.raises(WireError):
        from_wire(data)


@pytest.mark.parametrize("gap_ms", [1, 32_768, 65_536, 2**32])
def test_a_session_that_missed_one_write_has_another_digest(gap_ms: int) -> None:
    # Stamps of one node gap_ms apart; the second write reached only one replica.
    # Gaps of 2**15 and 2**16 ms flip single high bits of the stamp: they must
    # still change the digest, or anti-entropy would never repair that session.
    from clustersession.sessions.digest import field_hash

    times = iter([1_700_000_000.0, 1_700_000_000.0 + gap_ms / 1000])
    clock = HybridClock(7, wall=lambda: next(times))
    first, second = clock.stamp(), clock.stamp()
    both, one = (new_record(Change("t", 0.0), 60) for _ in range(2))
    for record in (both, one):
        merge(record, Change("t", 0.0, values={"k": b"1"}, value_stamps={"k": first}))
    merge(both, Change("t", 0.0, values={"k": b"2"}, value_stamps={"k": second}))
    assert both.digest != one.digest
    assert field_hash("k", first) != field_hash("k", second)


def test_the_malformed_cases_above_differ_from_valid_changes_in_one_field() -> None:
    # The bases the malformed cases were made from parse: each case fails for its field.
    full = ["t", 2.0, None, None, None, [bytes(12)], 0, -1, -1, {"a": b"v"}, 0, {}, False, None]
    assert from_wire(full).values == {"a": b"v"}
    stamp = int.from_bytes(b"\x01" * 12, "big")
    assert from_wire(["t", 1.0, b"\x01" * 12, {"a": b"v"}, ["b"]]).removed == {"b": stamp}


@pytest.mark.parametrize("seed", range(10))
def test_corrupted_session_messages_are_refused_or_harmless(seed: int) -> None:
    # Any field of a valid DELTA replaced by a value of another type: decoding either
    # refuses it with a WireError (the receiver logs and drops it) or yields changes
    # that a manager applies without error. Never another exception.
    from clustersession.sessions import wire as messages
    from clustersession.sessions.local_manager import LocalManager

    rng = random.Random(seed)
    clock = HybridClock(5)
    stamp = clock.stamp()
    full = Change("tok1", 1.0, 1.0, "n1", stamp, 60, stamp, {"a": b"\x01"}, {"a": stamp})
    full.full, full.removed = True, {"b": clock.stamp()}
    write = Change("tok1", 2.0, values={"c": b"\x02"}, value_stamps={"c": clock.stamp()})
    gone = Change("tok2", 3.0, invalidated=clock.stamp())
    good = msgpack.unpackb(
        messages.encode(messages.Message(messages.Kind.DELTA, seq=1, changes=[full, write, gone]))
    )
    junk: list[object] = [None, -1, 7, 2**63, 1.5, "x", b"y", b"\x00" * 12, [], {}, [1], {"k": 1}]
    for _ in range(300):
        data = msgpack.unpackb(msgpack.packb(good))  # a fresh deep copy
        target = rng.choice(data[2])  # one change's list
        index = rng.randrange(len(target))
        inner = target[index]
        if isinstance(inner, list) and inner and rng.random() < 0.5:  # or one level down
            inner[rng.randrange(len(inner))] = rng.choice(junk)
        elif isinstance(inner, dict) and inner and rng.random() < 0.5:
            inner[rng.choice(list(inner))] = rng.choice(junk)
        else:
            target[index] = rng.choice(junk)
        payload = msgpack.packb(data)
        try:
            decoded = messages.decode(payload)
        except WireError:
            continue
        manager = LocalManager()
        for change in decoded.changes:
            manager.apply(change, remote=True)
