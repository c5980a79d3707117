"""Frames, envelopes, heartbeats, tags and replay refusal, without a network."""

from __future__ import annotations

import asyncio
import time

import pytest

from clustersession.channel import options
from clustersession.channel.errors import AuthError, FrameError
from clustersession.channel.member import Member, new_member_id
from clustersession.channel.membership import heartbeat as hb
from clustersession.channel.security import Keys
from clustersession.channel.transport.connection import Connection
from clustersession.channel.transport.frames import (
    Envelope,
    MessageType,
    decode_envelope,
    encode_envelope,
    pack_header,
    unpack_header,
)

pytestmark = pytest.mark.anyio
SECRET = "wire-secret-0123456789"


def member(port: int = 4000) -> Member:
    return Member(new_member_id(), "10.0.0.1", port, "node1", "", time.time())


def test_envelope_round_trip() -> None:
    env = Envelope(MessageType.DATA, new_member_id(), 7, options.USE_ACK, b"payload")
    assert decode_envelope(encode_envelope(env)) == env


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xc1", "not msgpack"),
        (b"\x93\x01\x02\x03", "6-field"),
        (b"\x96\x02\x03\xc4\x10" + bytes(16) + b"\x00\x00\xc0", "version"),
        (b"\x96\x01\x63\xc4\x10" + bytes(16) + b"\x00\x00\xc0", "unknown message type"),
        (b"\x96\x01\x03\xc4\x02ab\x00\x00\xc0", "16 bytes"),
    ],
)
def test_malformed_envelopes_are_named(body: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode_envelope(body)


def test_header_limits() -> None:
    assert unpack_header(pack_header(0, 100), 100) == (0, 100)
    with pytest.raises(FrameError, match="exceeds the limit"):
        unpack_header(pack_header(0, 101), 100)
    with pytest.raises(FrameError, match="bad magic"):
        unpack_header(b"XX" + pack_header(0, 1)[2:], 100)
    with pytest.raises(FrameError, match="version"):
        unpack_header(b"CS\x09\x00\x00\x00\x00\x01", 100)


def make_heartbeat(counter: int = 1, *, timestamp: float | None = None) -> hb.Heartbeat:
    when = time.time() if timestamp is None else timestamp
    return hb.Heartbeat("", member(), 0, False, int(when * 1000), counter)


def test_heartbeat_round_trip_and_source_address() -> None:
    keys = Keys(SECRET)
    beat = make_heartbeat()
    announced = hb.Heartbeat(beat.domain, Member(beat.member.id, "", 4001), 0, False, 1, 1)
    decoded = hb.decode(hb.encode(announced, keys), keys, source_host="10.1.2.3")
    assert decoded.member.host == "10.1.2.3" and decoded.member.port == 4001
    assert hb.decode(hb.encode(beat, keys), keys, source_host="x") == beat


def test_heartbeat_with_another_secret_or_tampered_is_refused() -> None:
    datagram = hb.encode(make_heartbeat(), Keys(SECRET))
    with pytest.raises(AuthError):
        hb.decode(datagram, Keys("another-secret-0123456"), source_host="x")
    tampered = datagram[:10] + bytes([datagram[10] ^ 1]) + datagram[11:]
    with pytest.raises(AuthError):
        hb.decode(tampered, Keys(SECRET), source_host="x")
    with pytest.raises(FrameError):
        hb.decode(b"CSHB", Keys(SECRET), source_host="x")


def test_replayed_or_stale_heartbeats_are_refused() -> None:
    guard = hb.ReplayGuard(window=10)
    beat = make_heartbeat(counter=5)
    guard.check(beat)
    with pytest.raises(AuthError, match="replay"):
        guard.check(beat)
    with pytest.raises(AuthError, match="replay"):
        guard.check(hb.Heartbeat(beat.domain, beat.member, 0, False, beat.timestamp_ms, 4))
    guard.check(hb.Heartbeat(beat.domain, beat.member, 0, False, beat.timestamp_ms, 6))
    with pytest.raises(AuthError, match="off"):
        guard.check(make_heartbeat(timestamp=time.time() - 60))


async def connected_pair(
    keys_a: Keys, keys_b: Keys
) -> tuple[Connection, Connection, asyncio.Server]:
    accepted: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
    b = member()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = await Connection.accept(
                reader, writer, keys=keys_b, local=b, max_message_size=1 << 20, timeout=2
            )
            accepted.set_result(conn)
        except Exception as exc:
            writer.close()
            accepted.set_exception(exc)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        initiator = await Connection.open(
            "127.0.0.1", port, keys=keys_a, local=member(), max_message_size=1 << 20, timeout=2
        )
    except asyncio.IncompleteReadError:
        await accepted  # raises the acceptor's reason
        raise
    return initiator, await accepted, server


@pytest.mark.network  # a real TCP connection on 127.0.0.1
@pytest.mark.parametrize("encrypt", [False, True])
async def test_connection_frames_both_ways(encrypt: bool) -> None:
    keys = Keys(SECRET, encrypt=encrypt)
    a, b, server = await connected_pair(keys, keys)
    try:
        for i in range(3):
            a.write(Envelope(MessageType.DATA, new_member_id(), i, 0, b"secret-data"))
        await a.drain()
        assert [(await b.read()).message_id for _ in range(3)] == [0, 1, 2]
        b.write(Envelope(MessageType.ACK, new_member_id(), 2, 0, None))
        await b.drain()
        assert (await a.read()).type is MessageType.ACK
    finally:
        a.close()
        b.close()
        server.close()


@pytest.mark.network  # a real TCP connection on 127.0.0.1
async def test_handshake_with_the_wrong_secret_fails() -> None:
    with pytest.raises(AuthError):
        await connected_pair(Keys(SECRET), Keys("another-secret-0123456"))


OLD, NEW = "old-wire-secret-0123456", "new-wire-secret-0123456"


def test_rotation_heartbeats_verify_under_a_previous_secret() -> None:
    heartbeat = make_heartbeat()
    rotated, staged = Keys(NEW, previous=(OLD,)), Keys(OLD, previous=(NEW,))
    assert hb.decode(hb.encode(heartbeat, Keys(OLD)), rotated, source_host="x") == heartbeat
    assert hb.decode(hb.encode(heartbeat, rotated), staged, source_host="x") == heartbeat
    with pytest.raises(AuthError):  # a node that knows only the old secret
        hb.decode(hb.encode(heartbeat, rotated), Keys(OLD), source_host="x")


@pytest.mark.network  # real TCP connections on 127.0.0.1
@pytest.mark.parametrize("encrypt", [False, True])
@pytest.mark.parametrize(
    ("initiator", "acceptor"),
    [
        # Every pair a rolling rotation meets: (secret, previous) of each side.
        ((OLD, None), (OLD, NEW)),
        ((OLD, NEW), (OLD, None)),
        ((OLD, None), (NEW, OLD)),
        ((NEW, OLD), (OLD, NEW)),
        ((OLD, NEW), (NEW, OLD)),
        ((NEW, None), (OLD, NEW)),
    ],
)
async def test_rotation_connections_between_old_and_new_secrets(
    encrypt: bool, initiator: tuple[str, str | None], acceptor: tuple[str, str | None]
) -> None:
    def keys(pair: tuple[str, str | None]) -> Keys:
        secret, previous = pair
        return Keys(secret, previous=(previous,) if previous else (), encrypt=encrypt)

    a, b, server = await connected_pair(keys(initiator), keys(acceptor))
    try:
        a.write(Envelope(MessageType.DATA, new_member_id(), 1, 0, b"to the acceptor"))
        await a.drain()
        assert (await b.read()).payload == b"to the acceptor"
        b.write(Envelope(MessageType.DATA, new_member_id(), 2, 0, b"to the initiator"))
        await b.drain()
        assert (await a.read()).payload == b"to the initiator"
    finally:
        a.close()
        b.close()
        server.close()


@pytest.mark.network  # a real TCP connection on 127.0.0.1
async def test_rotation_a_node_without_the_new_secret_refuses_it() -> None:
    with pytest.raises(AuthError):
        await connected_pair(Keys(NEW, previous=(OLD,)), Keys(OLD))


@pytest.mark.network  # a real TCP connection on 127.0.0.1
async def test_a_replayed_frame_is_refused() -> None:
    keys = Keys(SECRET)
    a, b, server = await connected_pair(keys, keys)
    try:
        captured: list[bytes] = []
        original = a.writer.write

        def tap(data: bytes) -> None:  # type: ignore[override]
            captured.append(bytes(data))
            original(data)

        a.writer.write = tap  # type: ignore[method-assign]
        a.write(Envelope(MessageType.DATA, new_member_id(), 1, 0, b"pay me once"))
        await a.drain()
        assert (await b.read()).payload == b"pay me once"
        original(captured[0])  # the same bytes again, on the same connection
        with pytest.raises(AuthError, match="replayed"):
            await b.read()
    finally:
        a.close()
        b.close()
        server.close()


def test_options_check() -> None:
    assert options.check(14) == 14
    for bad in (1, 4, 12, 16, 32, -1):
        with pytest.raises(ValueError):
            options.check(bad)
