"""Fuzzing what a peer reaches on the channel: frame headers and bodies, heartbeats.

Property: only the channel's own errors (``FrameError``, ``AuthError``) escape,
and nothing allocates what a length field claims.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clustersession.channel.errors import AuthError, FrameError
from clustersession.channel.member import Member, new_member_id
from clustersession.channel.membership import heartbeat as hb
from clustersession.channel.security import Keys
from clustersession.channel.transport.connection import Connection, parse_member_record
from clustersession.channel.transport.frames import (
    HEADER_SIZE,
    Envelope,
    MessageType,
    decode_envelope,
    encode_envelope,
    pack_header,
    unpack_header,
)

from .strategies import HUGE_CLAIMS, assert_bounded, mutated, packed, values

SECRET = "fuzz-secret-0123456789"
CHANNEL_ERRORS = (FrameError, AuthError)


def member() -> Member:
    return Member(new_member_id(), "10.0.0.1", 4000, "node1", "", time.time())


def _envelopes() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda kind, message_id, options, payload: encode_envelope(
            Envelope(kind, new_member_id(), message_id, options, payload)
        ),
        st.sampled_from(MessageType),
        st.integers(0, 2**63),
        st.integers(0, 255),
        values,
    )


@given(st.binary(max_size=HEADER_SIZE) | st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE))
def test_frame_headers(data: bytes) -> None:
    try:
        flags, length = unpack_header(data, 1 << 20)
    except FrameError:
        return
    except Exception as exc:  # struct.error for a short header: the caller reads exactly 8
        assert len(data) != HEADER_SIZE, exc
        return
    assert 0 <= length <= 1 << 20 and 0 <= flags <= 255


@given(st.binary(max_size=300) | st.builds(packed, values) | mutated(_envelopes()))
def test_frame_bodies(body: bytes) -> None:
    try:
        envelope = decode_envelope(body)
    except FrameError:
        return
    assert isinstance(envelope.type, MessageType) and len(envelope.sender) == 16


@pytest.mark.parametrize("claim", HUGE_CLAIMS)
def test_frame_bodies_claiming_4_gib_allocate_nothing(claim: bytes) -> None:
    with pytest.raises(FrameError):
        decode_envelope(claim)
    assert_bounded(lambda: decode_envelope(claim), claim)
    nested = msgpack.packb([1, 3, bytes(16), 0, 0, None])[:-1] + claim
    assert_bounded(lambda: decode_envelope(nested), nested)


def _read(data: bytes, keys: Keys, *, accepting: bool) -> Any:
    """Read one frame from ``data`` as a connection would (the acceptor's first, or a later one)."""

    async def run() -> Any:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        conn = Connection(reader, _NullWriter(), keys, max_message_size=1 << 20)  # type: ignore[arg-type]
        conn._any_handshake_key = accepting
        return await conn.read()

    return asyncio.run(run())


class _NullWriter:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


@given(
    st.binary(max_size=200)
    | st.builds(lambda body: pack_header(0, len(body)) + body, st.binary(max_size=200))
    | st.builds(lambda body: pack_header(0, len(body) + 32) + body + bytes(32), _envelopes())
    | mutated(st.builds(lambda body: pack_header(1, len(body)) + body, _envelopes())),
    st.sampled_from([Keys(None), Keys(SECRET), Keys(SECRET, encrypt=True)]),
    st.booleans(),
)
def test_frames_on_a_connection(data: bytes, keys: Keys, accepting: bool) -> None:
    try:
        _read(data, keys, accepting=accepting)
    except (*CHANNEL_ERRORS, asyncio.IncompleteReadError):
        return


@pytest.mark.parametrize("length", [2**32 - 1, 2**31, (1 << 20) + 33])
def test_a_header_claiming_4_gib_is_refused_before_reading(length: int) -> None:
    data = pack_header(0, length) + bytes(64)
    with pytest.raises(FrameError, match="exceeds the limit"):
        _read(data, Keys(SECRET), accepting=True)
    assert_bounded(lambda: _read(data, Keys(SECRET), accepting=True), data)


def _heartbeats(keys: Keys) -> st.SearchStrategy[bytes]:
    beat = st.builds(
        lambda incarnation, leaving, counter: hb.encode(
            hb.Heartbeat("", member(), incarnation, leaving, int(time.time() * 1000), counter),
            keys,
        ),
        st.integers(0, 2**64 - 1),
        st.booleans(),
        st.integers(0, 2**64 - 1),
    )
    return beat


def _tagged(keys: Keys) -> st.SearchStrategy[bytes]:
    """A correctly tagged datagram around a random body: reaches the body's checks."""

    def tag(body: bytes) -> bytes:
        head = hb.MAGIC + bytes([hb.VERSION]) + body
        return head + keys.tag(keys.heartbeat, head)

    return st.builds(tag, st.builds(packed, values) | st.builds(packed, st.lists(values)))


@given(
    st.binary(max_size=300)
    | _tagged(Keys(SECRET))
    | mutated(_heartbeats(Keys(SECRET)))
    | st.builds(lambda body: hb.MAGIC + b"\x01" + body, st.binary(max_size=300)),
    st.sampled_from([Keys(None), Keys(SECRET), Keys("other-secret-0123456", previous=(SECRET,))]),
)
def test_heartbeats(datagram: bytes, keys: Keys) -> None:
    try:
        beat = hb.decode(datagram, keys, source_host="10.0.0.9")
    except CHANNEL_ERRORS:
        return
    assert isinstance(beat.member, Member)


@pytest.mark.parametrize("claim", HUGE_CLAIMS)
def test_heartbeats_claiming_4_gib_allocate_nothing(claim: bytes) -> None:
    keys = Keys(SECRET)
    head = hb.MAGIC + bytes([hb.VERSION]) + claim
    datagram = head + keys.tag(keys.heartbeat, head)
    with pytest.raises(FrameError):
        hb.decode(datagram, keys, source_host="x")
    assert_bounded(lambda: hb.decode(datagram, keys, source_host="x"), datagram)


@given(values)
def test_member_records(record: Any) -> None:
    try:
        parsed = parse_member_record(record, host="10.0.0.9")
    except FrameError:
        return
    assert 0 < parsed.port < 65536
