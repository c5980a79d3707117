"""Rendezvous placement: even spread, and a join or a leave moves only its share."""

from __future__ import annotations

import random
from collections import Counter

from clustersession.sessions.placement import backups, ranking

RNG = random.Random(12)
MEMBERS = [RNG.randbytes(16) for _ in range(8)]
TOKENS = [f"t{RNG.getrandbits(64):016x}" for _ in range(8000)]


def test_every_node_agrees_whatever_order_it_sees_the_members_in() -> None:
    shuffled = MEMBERS[::-1]
    for token in TOKENS[:200]:
        assert ranking(token, MEMBERS) == ranking(token, shuffled)
        assert backups(token, MEMBERS[0], MEMBERS, 2) == backups(token, MEMBERS[0], shuffled, 2)


def test_backups_exclude_the_primary_and_are_distinct() -> None:
    for token in TOKENS[:500]:
        chosen = backups(token, MEMBERS[3], MEMBERS, 3)
        assert len(chosen) == len(set(chosen)) == 3 and MEMBERS[3] not in chosen
    assert backups("x", MEMBERS[0], MEMBERS[:2], 3) == [MEMBERS[1]]  # fewer members than asked


def test_copies_spread_evenly() -> None:
    load = Counter(m for t in TOKENS for m in ranking(t, MEMBERS)[:2])
    expected = len(TOKENS) * 2 / len(MEMBERS)
    assert all(abs(count - expected) < 0.1 * expected for count in load.values()), load


def test_a_join_moves_only_the_joiners_share() -> None:
    before = {t: set(ranking(t, MEMBERS[:7])[:2]) for t in TOKENS}
    after = {t: set(ranking(t, MEMBERS)[:2]) for t in TOKENS}
    moved = [t for t in TOKENS if before[t] != after[t]]
    # Every change brings the new member in and drops exactly one old one ...
    assert all(
        after[t] - before[t] == {MEMBERS[7]} and len(before[t] - after[t]) == 1 for t in moved
    )
    # ... and only its share moves: 2 of 8 places, about a quarter of the sessions.
    assert 0.2 * len(TOKENS) < len(moved) < 0.3 * len(TOKENS)


def test_a_leave_moves_only_what_the_leaver_held() -> None:
    gone = MEMBERS[2]
    before = {t: ranking(t, MEMBERS)[:2] for t in TOKENS}
    after = {t: ranking(t, [m for m in MEMBERS if m != gone])[:2] for t in TOKENS}
    for token in TOKENS:
        if gone in before[token]:
            assert [m for m in before[token] if m != gone] == after[token][:1]
        else:
            assert after[token] == before[token]
