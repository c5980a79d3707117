"""The backup manager's proxy table: what is put is read back, whatever the routes."""

from __future__ import annotations

import random

import pytest

from clustersession.sessions import proxies
from clustersession.sessions.ids import SessionIds
from clustersession.sessions.proxies import Proxies
from clustersession.sessions.wire import STAMP_BYTES

STAMP = (1_764_000_000_000 << 48) | 0xDEADBEEF  # a realistic HLC stamp (~2^89)


def test_entries_read_back_as_put() -> None:
    table = Proxies()
    table.put("a", "node1", STAMP)
    table.put("b", None, 1)
    table.put("c", "node2", (1 << 96) - 1)
    assert table.get("a") == ("node1", STAMP)
    assert table.get("b") == (None, 1)
    assert table.get("c") == ("node2", (1 << 96) - 1)
    assert table.get("d") is None
    assert table.route("a") == "node1" and table.route("d") is None
    assert sorted(table.items()) == [
        ("a", "node1", STAMP),
        ("b", None, 1),
        ("c", "node2", (1 << 96) - 1),
    ]
    assert "a" in table and "d" not in table and len(table) == 3 and set(table) == {"a", "b", "c"}


def test_put_replaces_and_pop_forgets() -> None:
    table = Proxies()
    table.put("a", "node1", STAMP)
    table.put("a", "node2", STAMP + 1)
    assert table.get("a") == ("node2", STAMP + 1)
    table.pop("a")
    table.pop("never-there")
    assert table.get("a") is None and len(table) == 0


def test_a_stamp_wider_than_the_wire_is_refused() -> None:
    assert proxies.STAMP_BITS == 8 * STAMP_BYTES
    with pytest.raises(ValueError):
        Proxies().put("a", "node1", 1 << proxies.STAMP_BITS)


def test_routes_no_entry_uses_are_dropped_and_the_others_kept() -> None:
    table = Proxies()
    # Nodes that come and go under new routes: far more routes than the table keeps.
    for i in range(3000):
        table.put(f"t{i}", f"route{i}", STAMP + i)
        if i % 3:
            table.pop(f"t{i}")
    expected = {(f"t{i}", f"route{i}", STAMP + i) for i in range(0, 3000, 3)}
    assert set(table.items()) == expected
    assert len(table._routes) < 2 * proxies._ROUTES_COMPACTED_AT


def test_many_routes_in_use_are_all_kept() -> None:
    table = Proxies()
    for i in range(5000):
        table.put(f"t{i}", f"route{i}", STAMP + i)
    assert set(table.items()) == {(f"t{i}", f"route{i}", STAMP + i) for i in range(5000)}


@pytest.mark.parametrize(
    "token",
    [
        SessionIds("secret", "node1").new_token(),  # 44 characters: random part and tag
        SessionIds(None, "node1").new_token(),  # 22 characters
        "A" * 44,  # leading zero bits
        "-_" * 9,
        "a" * 15,  # short: kept as a str
        "not.base64url",
        "spaces are fine too",
        "",
    ],
)
def test_any_token_is_its_own_entry(token: str) -> None:
    table = Proxies()
    table.put(token, "node1", STAMP)
    table.put(token + "x", "node2", STAMP + 1)
    assert token in table and token + "x" in table and token[:-1] + "y" not in table
    assert sorted(table) == sorted([token, token + "x"])
    assert table.get(token) == ("node1", STAMP)
    assert sorted(table.items()) == [(token, "node1", STAMP), (token + "x", "node2", STAMP + 1)]
    table.pop(token)
    assert list(table) == [token + "x"]


def test_a_random_history_reads_back_as_a_dict_would() -> None:
    """Puts, replacements and pops of signed, unsigned and odd tokens, checked against
    a dict after every step (the table grows, shrinks and reuses deleted rows)."""
    rng = random.Random(12)
    signed, unsigned = SessionIds("secret", "n"), SessionIds(None, "n")
    tokens = [signed.new_token() for _ in range(400)] + [unsigned.new_token() for _ in range(200)]
    tokens += [f"odd.{i}" for i in range(50)] + ["A" * 44, "A" * 22, "_" * 44]
    table, model = Proxies(), {}
    for step in range(6000):
        token = rng.choice(tokens)
        if rng.random() < 0.35:
            table.pop(token)
            model.pop(token, None)
        else:
            route = rng.choice([None, "node1", "node2", "node3"])
            stamp = rng.randrange(1 << 96)
            table.put(token, route, stamp)
            model[token] = (route, stamp)
        assert table.get(token) == model.get(token), step
        if step % 500 == 0 or step == 5999:
            assert len(table) == len(model)
            assert sorted(table) == sorted(model)
            assert sorted(table.items(), key=str) == sorted(
                ((t, r, s) for t, (r, s) in model.items()), key=str
            )
            assert all(table.get(t) == model.get(t) for t in tokens)
    for token in list(model):
        table.pop(token)
    assert len(table) == 0 and list(table) == []
