"""Several channels in one process: real TCP, real multicast on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import replace

import pytest

from clustersession.channel import options
from clustersession.channel.errors import ChannelError
from clustersession.channel.group import GroupChannel
from clustersession.channel.interceptors.base import ChannelMessage
from clustersession.config.sections import SenderConfig

from ..support.loopback import loopback_config
from ..support.polling import eventually
from .conftest import ChannelFactory

pytestmark = [pytest.mark.anyio, pytest.mark.network]


async def test_members_see_each_other_within_two_heartbeats(make_channel: ChannelFactory) -> None:
    # The seed's timing: a heartbeat every 500 ms.
    a, _ = await make_channel(frequency=500, drop_time=3000)
    b, _ = await make_channel(frequency=500, drop_time=3000)
    c, _ = await make_channel(frequency=500, drop_time=3000)
    started = time.monotonic()
    assert await eventually(lambda: all(len(ch.members) == 2 for ch in (a, b, c)), timeout=1.0)
    assert time.monotonic() - started <= 1.0
    assert {m.id for m in a.members} == {b.local.id, c.local.id}
    # Oldest first: b started before c.
    assert [m.id for m in a.members] == [b.local.id, c.local.id]


async def test_graceful_stop_is_seen_at_once(make_channel: ChannelFactory) -> None:
    a, a_events = await make_channel(drop_time=30000)
    b, _ = await make_channel(drop_time=30000)
    assert await eventually(lambda: len(a.members) == 1 and len(b.members) == 1)
    stopped = time.monotonic()
    await b.stop()
    assert await eventually(lambda: not a.members, timeout=1.0)
    member, reason, when = a_events.removed[0]
    assert member.id == b.local.id and "left" in reason
    assert when - stopped < 1.0  # far below drop_time (30 s)


async def test_a_restarted_member_is_a_new_member(
    make_channel: ChannelFactory, mcast_port: int
) -> None:
    config = loopback_config(mcast_port)
    a, a_events = await make_channel(config)
    b, _ = await make_channel(config)
    assert await eventually(lambda: len(a.members) == 1)
    first_id = b.local.id
    await b.stop()
    assert await eventually(lambda: not a.members)
    b2, _ = await make_channel(config)
    assert await eventually(lambda: len(a.members) == 1)
    assert a.members[0].id == b2.local.id != first_id
    assert [m.id for m in a_events.added] == [first_id, b2.local.id]


async def test_other_domain_is_ignored(make_channel: ChannelFactory, mcast_port: int) -> None:
    a, _ = await make_channel()
    other = loopback_config(mcast_port)
    other = replace(other, membership=replace(other.membership, domain="other-shop"))
    b, _ = await make_channel(other)
    c, _ = await make_channel()
    assert await eventually(lambda: len(a.members) == 1 and len(c.members) == 1)
    await asyncio.sleep(0.5)  # several heartbeats of b have gone by: give it every chance
    assert b.local.id not in {m.id for m in a.members + c.members}
    assert not b.members


async def test_wrong_secret_never_joins(make_channel: ChannelFactory, mcast_port: int) -> None:
    a, _ = await make_channel()
    intruder, _ = await make_channel(
        replace(loopback_config(mcast_port), secret="not-the-secret-0000")
    )
    b, _ = await make_channel()
    assert await eventually(lambda: len(a.members) == 1 and len(b.members) == 1)
    assert await eventually(lambda: a.stats().refused_heartbeats >= 3)
    assert intruder.local.id not in {m.id for m in a.members + b.members}
    assert not intruder.members
    # It cannot inject over TCP either: the handshake fails.
    with pytest.raises(ChannelError):
        await intruder.send([a.local], b"forged", options.USE_ACK)
    assert a.stats().messages_received == 0


async def test_insecure_channel_needs_explicit_consent(mcast_port: int) -> None:
    config = replace(loopback_config(mcast_port), secret=None)
    with pytest.raises(RuntimeError, match="allow_insecure"):
        await GroupChannel(config).start()
    channel = GroupChannel(replace(config, allow_insecure=True))
    await channel.start()
    await channel.stop()


@pytest.mark.parametrize(
    "opts", [0, options.USE_ACK, options.USE_ACK | options.SYNC_ACK, 8, 10, 14]
)
async def test_every_send_option_delivers_in_order(make_channel: ChannelFactory, opts: int) -> None:
    a, _ = await make_channel()
    b, _ = await make_channel()
    c, _ = await make_channel()
    assert await eventually(lambda: len(a.members) == 2)
    got: dict[str, list[bytes]] = {"b": [], "c": []}
    b.add_listener(lambda m: got["b"].append(m.payload))
    c.add_listener(lambda m: got["c"].append(m.payload))
    payloads = [f"m{i}".encode() for i in range(200)]
    for payload in payloads:
        await a.send(None, payload, opts)
    assert await eventually(lambda: got["b"] == payloads and got["c"] == payloads)


async def test_sync_ack_returns_after_the_listener_ran(make_channel: ChannelFactory) -> None:
    a, _ = await make_channel()
    b, _ = await make_channel()
    assert await eventually(lambda: len(a.members) == 1)
    processed: list[bytes] = []

    async def slow_listener(message: ChannelMessage) -> None:
        await asyncio.sleep(0.3)  # a listener doing real work
        processed.append(message.payload)

    b.add_listener(slow_listener)
    await a.send(None, b"ack-only", options.USE_ACK)
    assert processed == []  # USE_ACK alone: acknowledged on receipt
    await a.send(None, b"applied", options.USE_ACK | options.SYNC_ACK)
    assert processed == [b"ack-only", b"applied"]


async def test_a_failing_listener_gives_a_remote_error_with_sync_ack(
    make_channel: ChannelFactory,
) -> None:
    a, _ = await make_channel()
    b, _ = await make_channel()
    assert await eventually(lambda: len(a.members) == 1)

    def broken(message: ChannelMessage) -> None:
        raise ValueError("cannot apply")

    b.add_listener(broken)
    with pytest.raises(ChannelError, match="cannot apply"):
        await a.send(None, b"x", options.USE_ACK | options.SYNC_ACK)
    assert len(a.members) == 1  # it answered: it is alive


async def test_acknowledged_sends_on_open_connections_name_the_member_that_failed(
    make_channel: ChannelFactory,
) -> None:
    a, _ = await make_channel()
    b, _ = await make_channel()
    c, _ = await make_channel()
    assert await eventually(lambda: len(a.members) == 2)
    got: list[bytes] = []

    def picky(message: ChannelMessage) -> None:
        if message.payload == b"bad":
            raise ValueError("cannot apply")
        got.append(message.payload)

    b.add_listener(picky)
    at_c: list[bytes] = []
    c.add_listener(lambda message: at_c.append(message.payload))
    sync = options.USE_ACK | options.SYNC_ACK
    await a.send(None, b"first", sync)  # connects to both: the next sends go on open sockets
    with pytest.raises(ChannelError, match="cannot apply") as info:
        await a.send(None, b"bad", sync)
    assert [m.id for m in info.value.members] == [b.local.id]
    await a.send(None, b"after", sync)
    assert got == [b"first", b"after"]
    assert at_c == [b"first", b"bad", b"after"]  # c acknowledged what b refused
    assert len(a.members) == 2


async def test_an_ack_that_does_not_come_in_time_fails_the_send_and_is_ignored_later(
    make_channel: ChannelFactory, mcast_port: int
) -> None:
    config = loopback_config(mcast_port, sender=SenderConfig(timeout=300))
    a, _ = await make_channel(config)
    b, _ = await make_channel()
    assert await eventually(lambda: len(a.members) == 1)
    release = asyncio.Event()
    got: list[bytes] = []

    async def stuck_once(message: ChannelMessage) -> None:
        if message.payload == b"slow":
            await release.wait()
        got.append(message.payload)

    b.add_listener(stuck_once)
    sync = options.USE_ACK | options.SYNC_ACK
    await a.send(None, b"first", sync)
    started = time.monotonic()
    with pytest.raises(ChannelError, match="TimeoutError") as info:
        await a.send(None, b"slow", sync)
    assert 0.25 < time.monotonic() - started < 2.0
    assert [m.id for m in info.value.members] == [b.local.id]
    release.set()  # its ACK now comes late, for a send nobody waits for
    await a.send(None, b"next", sync)
    assert got == [b"first", b"slow", b"next"]


async def test_a_send_to_a_dead_member_names_it(make_channel: ChannelFactory) -> None:
    a, _ = await make_channel()
    b, _ = await make_channel()
    assert await eventually(lambda: len(a.members) == 1)
    ghost = b.local
    await b.coordinator.receiver.stop()  # b's port closes without a goodbye
    with pytest.raises(ChannelError) as info:
        await a.send([ghost], b"x", options.USE_ACK)
    assert list(info.value.members) == [ghost]


def raw_connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=2)


async def test_garbage_and_oversized_frames_are_refused(
    make_channel: ChannelFactory, mcast_port: int
) -> None:
    config = loopback_config(mcast_port)
    a, _ = await make_channel(
        replace(config, receiver=replace(config.receiver, max_message_size=4096))
    )
    b, _ = await make_channel(config)  # b's own limit is the default 16 MiB
    assert await eventually(lambda: len(a.members) == 1)
    got: list[bytes] = []
    a.add_listener(lambda m: got.append(m.payload))

    def attack() -> list[bytes]:
        answers = []
        for data in [
            b"GET / HTTP/1.1\r\n\r\n",
            b"CS\x01\x00" + struct.pack(">I", 1 << 30),  # announces 1 GiB
            b"CS\x01\x00" + struct.pack(">I", 40) + b"\x00" * 40,  # bad tag
        ]:
            with raw_connect(a.local.port) as sock:
                sock.sendall(data)
                answers.append(sock.recv(100))  # b"": closed on us
        return answers

    answers = await asyncio.to_thread(attack)
    assert answers == [b"", b"", b""]
    assert a.stats().refused_frames == 3
    await b.send(None, b"still fine", options.USE_ACK | options.SYNC_ACK)
    assert got == [b"still fine"]
    with pytest.raises(ChannelError):  # a refuses the frame and closes the connection
        await b.send(None, b"x" * 10_000, options.USE_ACK)
    assert a.stats().refused_frames >= 4
    with pytest.raises(ValueError, match="exceeds the limit"):  # refused before sending
        await a.send(None, b"x" * 10_000, options.USE_ACK)
    await b.send(None, b"fine again", options.USE_ACK | options.SYNC_ACK)
    assert got == [b"still fine", b"fine again"]


async def test_killed_member_is_removed_fast_when_its_connection_drops(
    make_channel: ChannelFactory,
) -> None:
    a, a_events = await make_channel(drop_time=30000)
    b, _ = await make_channel(drop_time=30000)
    assert await eventually(lambda: len(a.members) == 1 and len(b.members) == 1)
    # What a SIGKILL does to b as seen from a: its sockets close, nothing is said.
    assert b.membership.multicast is not None
    b.membership.multicast._transport.close()  # type: ignore[union-attr]
    b.membership.multicast._sender.cancel()  # type: ignore[union-attr]
    b.membership.multicast._transport = None
    killed = time.monotonic()
    await b.coordinator.receiver.stop()
    assert await eventually(lambda: not a.members, timeout=2.0)
    assert a_events.removed[0][2] - killed < 1.0


async def test_encrypted_channels_talk_and_plain_ones_are_refused(
    make_channel: ChannelFactory, mcast_port: int
) -> None:
    config = loopback_config(mcast_port)
    encrypted = replace(
        config,
        interceptors=replace(
            config.interceptors, order=("encrypt", "failure_detector", "dispatch")
        ),
    )
    a, _ = await make_channel(encrypted)
    b, _ = await make_channel(encrypted)
    assert await eventually(lambda: len(a.members) == 1)
    got: list[bytes] = []
    b.add_listener(lambda m: got.append(m.payload))
    await a.send(None, b"confidential", options.USE_ACK | options.SYNC_ACK)
    assert got == [b"confidential"]
    plain, _ = await make_channel(config)  # same secret, no encryption
    with pytest.raises(ChannelError):
        await plain.send([a.local], b"in clear", options.USE_ACK)
    assert await eventually(lambda: a.stats().refused_frames >= 1)


async def test_auto_bind_takes_the_next_free_port(
    make_channel: ChannelFactory, mcast_port: int
) -> None:
    config = loopback_config(mcast_port)
    a, _ = await make_channel(config)
    b, _ = await make_channel(config)  # same first port: b must move on, and say so
    assert a.local.port == config.receiver.port
    assert b.local.port == config.receiver.port + 1
    assert await eventually(lambda: [m.port for m in a.members] == [b.local.port])


async def test_a_second_worker_without_auto_bind_is_told_why_it_cannot_start(
    make_channel: ChannelFactory, mcast_port: int
) -> None:
    config = loopback_config(mcast_port)
    config = config.replace(receiver=replace(config.receiver, auto_bind=1))
    await make_channel(config)
    with pytest.raises(OSError, match=r"several workers per host need receiver.auto_bind > 1"):
        await make_channel(config)
