"""A receiver's stop ends promptly, even when a peer connects while it stops.

Seen in the backup manager's rolling restart (issue 12): a node's graceful stop
sometimes outlived the harness's 15 s. Its stacks showed the stop awaiting the
task of an incoming connection that had been cancelled yet went on reading:
the peer's HELLO had arrived in the loop iteration the cancel did, and Python
3.11's ``wait_for`` (the handshake's timeout) then returns the result and drops
the cancellation. The connection stayed open until the peer closed it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any, cast

import pytest

from clustersession.channel.member import Member, new_member_id
from clustersession.channel.security import Keys
from clustersession.channel.transport.connection import Connection, member_record
from clustersession.channel.transport.frames import Envelope, MessageType
from clustersession.channel.transport.receiver import Receiver
from clustersession.config.sections import ReceiverConfig

from ..support.loopback import random_receiver_port

pytestmark = pytest.mark.anyio
SECRET = "receiver-secret-0123456789"


def member(port: int = 4000) -> Member:
    return Member(new_member_id(), "127.0.0.1", port, "node1", "", time.time())


class Wire:
    """The writing half of a stream that keeps what is written (no socket)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self.transport = self

    def write(self, data: bytes) -> None:
        self.data += data

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def hello(keys: Keys) -> bytes:
    """The bytes of an initiator's HELLO frame."""
    wire = Wire()
    conn = Connection(asyncio.StreamReader(), cast(asyncio.StreamWriter, wire), keys, 1 << 20)
    conn.write(Envelope(MessageType.HELLO, member().id, 0, 0,
                        [secrets.token_bytes(16), member_record(member(4001))]))  # fmt: skip
    return bytes(wire.data)


@pytest.mark.parametrize("iterations", range(6))
async def test_a_cancel_arriving_with_the_hello_is_honoured(iterations: int) -> None:
    """Whatever loop iteration after the HELLO the cancel lands in, an accept it was
    accepted by (``cancel()`` returned True) ends cancelled, not with a connection."""
    keys = Keys(SECRET)
    reader = asyncio.StreamReader()
    writer = cast(asyncio.StreamWriter, Wire())
    accept = asyncio.ensure_future(
        Connection.accept(
            reader, writer, keys=keys, local=member(), max_message_size=1 << 20, timeout=5
        )
    )
    for _ in range(3):  # the accept is waiting for the HELLO
        await asyncio.sleep(0)
    reader.feed_data(hello(keys))
    for _ in range(iterations):
        await asyncio.sleep(0)
    requested = accept.cancel()
    try:
        await accept
    except asyncio.CancelledError:
        assert requested
        return
    assert not requested, "the accept was cancelled, yet it went on with a connection"


@pytest.mark.network  # a real TCP listener on 127.0.0.1
async def test_stop_ends_with_peers_connecting_meanwhile() -> None:
    """Peers connecting and shaking hands around the stop: it ends within a second,
    and every connection it accepted is closed (each peer reads end of stream)."""
    keys = Keys(SECRET)
    local = member()

    async def handler(conn: Connection, envelope: Envelope) -> None:
        return None

    for offset in range(8):
        receiver = Receiver(
            ReceiverConfig(address="127.0.0.1", port=random_receiver_port(), auto_bind=50),
            keys,
            local=lambda: local,
            handler=handler,
            on_accepted=lambda conn: None,
            on_refused=lambda source, error: None,
        )
        port = await receiver.start()
        peers = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        frame = hello(keys)
        for _, writer in peers:
            writer.write(frame)
        for _ in range(offset):
            await asyncio.sleep(0)
        started = time.monotonic()
        stopping = asyncio.ensure_future(receiver.stop())
        await asyncio.wait({stopping}, timeout=5)
        took = time.monotonic() - started
        if not stopping.done():  # the peers leave, so that the stop ends, then fail
            for _, writer in peers:
                writer.close()
            await stopping
        assert took < 1.0, f"stop took {took:.1f} s with peers connecting (offset {offset})"
        for reader, writer in peers:
            # A WELCOME may have been sent; then the end of the stream.
            while await asyncio.wait_for(reader.read(1 << 16), 2):
                pass
            writer.close()
