"""Fuzzing what a peer reaches in the session layer: session messages and stored values.

Property: only ``WireError`` (messages) and ``CodecError`` (values) escape, and
nothing allocates what a length field claims.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clustersession.sessions import codec, wire
from clustersession.sessions.change import Change

from .strategies import HUGE_CLAIMS, assert_bounded, ints, mutated, packed, values

STAMP = st.binary(min_size=12, max_size=12)


def _changes() -> st.SearchStrategy[Change]:
    def build(token: str, accessed: float, names: list[str], stamp: int, full: bool) -> Change:
        change = Change(token, accessed, values={n: codec.encode(n) for n in names}, full=full)
        change.value_stamps = dict.fromkeys(names, stamp)
        return change

    return st.builds(
        build,
        st.text(max_size=44),
        st.floats(allow_nan=False),
        st.lists(st.text(max_size=8), max_size=3, unique=True),
        st.integers(1, 2**95),
        st.booleans(),
    )


def _messages() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda kind, changes, dead, buckets, seq: wire.encode(
            wire.Message(kind, seq=seq, changes=changes, dead=dead, buckets=buckets)
        ),
        st.sampled_from(wire.Kind),
        st.lists(_changes(), max_size=3),
        st.lists(st.tuples(st.text(max_size=44), st.integers(1, 2**95)), max_size=3),
        st.lists(st.integers(0, 2**63), max_size=4),
        st.integers(0, 2**63),
    )


def _shaped() -> st.SearchStrategy[bytes]:
    """A kind followed by random fields: reaches every kind's field checks."""
    return st.builds(
        lambda kind, fields: packed([int(kind), *fields]),
        st.sampled_from(wire.Kind) | ints,
        st.lists(values | st.lists(st.lists(values, max_size=15), max_size=3), max_size=6),
    )


@given(st.binary(max_size=300) | st.builds(packed, values) | _shaped() | mutated(_messages()))
def test_session_messages(payload: bytes) -> None:
    try:
        message = wire.decode(payload)
    except wire.WireError:
        return
    assert isinstance(message.kind, wire.Kind)
    for change in message.changes:
        assert isinstance(change.token, str)


@given(st.lists(values, min_size=14, max_size=14) | st.lists(values, min_size=6, max_size=6))
def test_changes_of_any_field_types(fields: list[Any]) -> None:
    try:
        wire.from_wire(fields)
    except wire.WireError:
        return


@pytest.mark.parametrize("claim", HUGE_CLAIMS)
def test_session_messages_claiming_4_gib_allocate_nothing(claim: bytes) -> None:
    for payload in (claim, msgpack.packb([1, 0])[:-1] + claim):
        with pytest.raises(wire.WireError):
            wire.decode(payload)
        assert_bounded(lambda payload=payload: wire.decode(payload), payload)


def _encoded_values() -> st.SearchStrategy[bytes]:
    storable = st.recursive(
        st.none() | st.booleans() | ints | st.floats() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=8), inner, max_size=3)
            | st.frozensets(ints, max_size=3)
        ),
        max_leaves=10,
    )
    return st.builds(codec.encode, storable)


@given(st.binary(max_size=300) | st.builds(packed, values) | mutated(_encoded_values()))
def test_session_values(data: bytes) -> None:
    try:
        codec.decode(data)
    except codec.CodecError:
        return


@given(st.integers(0, 255), st.binary(max_size=64))
def test_session_value_extension_types(code: int, body: bytes) -> None:
    data = packed(msgpack.ExtType(code % 128, body))
    try:
        codec.decode(data)
    except codec.CodecError:
        return


@pytest.mark.parametrize("claim", HUGE_CLAIMS)
def test_session_values_claiming_4_gib_allocate_nothing(claim: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(claim)
    assert_bounded(lambda: codec.decode(claim), claim)
