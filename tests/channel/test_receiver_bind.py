"""A receiver only claims a port it listens on.

Worker processes of one host start at the same moment and bind the same port
range. The address is reusable (SO_REUSEADDR) until one of them listens, so two
can bind one port; the second's listen() then fails, and uvloop only logs that.
That worker advertised a port another process answered on, so its peers never
admitted it ("answered as ...: not admitted", seen with three uvicorn workers).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from clustersession.channel.member import Member, new_member_id
from clustersession.channel.security import Keys
from clustersession.channel.transport import receiver as receiver_module
from clustersession.channel.transport.receiver import Receiver
from clustersession.config.sections import ReceiverConfig

from ..support.loopback import random_receiver_port

pytestmark = pytest.mark.anyio


async def test_a_port_bound_but_not_listening_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    first = random_receiver_port()
    local = Member(new_member_id(), "127.0.0.1", first, "node1", "", time.time())
    real_start_server = asyncio.start_server
    calls: list[int] = []

    async def start_server(*args: Any, **kwargs: Any) -> asyncio.Server:
        port = args[2]
        calls.append(port)
        if port == first:
            # What the race leaves: the socket is bound, its listen() did not happen.
            return await real_start_server(*args, start_serving=False, **kwargs)
        return await real_start_server(*args, **kwargs)

    monkeypatch.setattr(receiver_module.asyncio, "start_server", start_server)

    async def handler(*_: Any) -> None:
        return None

    receiver = Receiver(
        ReceiverConfig(address="127.0.0.1", port=first, auto_bind=10),
        Keys("receiver-secret-0123456789"),
        local=lambda: local,
        handler=handler,
        on_accepted=lambda conn: None,
        on_refused=lambda source, error: None,
    )
    port = await receiver.start()
    try:
        assert calls[0] == first
        assert port != first, "claimed a port it does not listen on"
        # The port it claims accepts connections.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
    finally:
        await receiver.stop()
