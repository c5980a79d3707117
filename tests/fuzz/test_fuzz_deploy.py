"""Fuzzing the farm deployer's messages: only ``FarmWireError`` escapes."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clustersession.deploy import wire
from clustersession.deploy.wire import PREFIX

from .strategies import HUGE_CLAIMS, assert_bounded, ints, mutated, packed, values

DIGEST = "a" * 64


def _messages() -> st.SearchStrategy[bytes]:
    entry = st.builds(wire.Entry, st.text(max_size=20), st.integers(0, 2**40), st.just(DIGEST),
                      st.floats(allow_nan=False))  # fmt: skip
    return st.builds(
        lambda kind, name, entries, data: wire.encode(
            wire.Message(kind, request=7, name=name, digest=DIGEST, entries=entries, data=data)
        ),
        st.sampled_from(wire.Kind),
        st.text(max_size=20),
        st.lists(entry, max_size=3),
        st.binary(max_size=40),
    )


def _shaped() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda kind, fields: PREFIX + packed([int(kind), *fields]),
        st.sampled_from(wire.Kind) | ints,
        st.lists(values | st.lists(st.lists(values, max_size=5), max_size=3), max_size=6),
    )


@given(
    st.builds(lambda data: PREFIX + data, st.binary(max_size=300))
    | st.builds(lambda value: PREFIX + packed(value), values)
    | _shaped()
    | mutated(_messages())
)
def test_farm_messages(payload: bytes) -> None:
    try:
        message = wire.decode(payload)
    except wire.FarmWireError:
        return
    assert isinstance(message.kind, wire.Kind)
    assert message.request >= 0 and message.offset >= 0 and message.length >= 0


@pytest.mark.parametrize("claim", HUGE_CLAIMS)
def test_farm_messages_claiming_4_gib_allocate_nothing(claim: bytes) -> None:
    for payload in (PREFIX + claim, PREFIX + msgpack.packb([7, 1])[:-1] + claim):
        with pytest.raises(wire.FarmWireError):
            wire.decode(payload)
        assert_bounded(lambda payload=payload: wire.decode(payload), payload)
