"""A send cancelled while its connect fails leaves no unretrieved task error.

Seen under gunicorn: sibling workers stopping together cancel their sends to a
member that just closed its receiver, and Python 3.11's ``wait_for`` turned the
refused connect of its inner task into "Task exception was never retrieved"
on stderr, at every such shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import pytest

from clustersession.channel.member import Member, new_member_id
from clustersession.channel.security import Keys
from clustersession.channel.transport.connection import Connection
from clustersession.channel.transport.sender import PeerSender

pytestmark = pytest.mark.anyio


def member(port: int) -> Member:
    return Member(new_member_id(), "127.0.0.1", port, "node", "", time.time())


@pytest.mark.parametrize("call", ["send", "ping"])
async def test_a_cancel_meeting_a_refused_connect_is_reported_to_the_caller_only(
    monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    entered = asyncio.Event()

    async def refused_once_cancelled(*args: object, **kwargs: object) -> Any:
        entered.set()
        try:
            await asyncio.Event().wait()  # the connect attempt, in flight
        except asyncio.CancelledError:
            # What 3.11's wait_for does when the attempt fails in the loop iteration
            # the cancel arrives in: the error replaces the cancellation.
            raise ConnectionRefusedError(111, "Connect call failed") from None

    monkeypatch.setattr(Connection, "open", refused_once_cancelled)
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    try:
        peer = PeerSender(
            member(4001),
            keys=Keys(None),
            local=member(4000),
            max_message_size=1 << 20,
            on_lost=lambda *_: None,
        )
        work = peer.send(b"x", 0, timeout=5, retries=0) if call == "send" else peer.ping(5)
        task = asyncio.ensure_future(work)
        await entered.wait()
        task.cancel()
        with pytest.raises((asyncio.CancelledError, ConnectionRefusedError)):
            await task
        del task
        gc.collect()  # an unretrieved task error is reported when the task is collected
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert unretrieved == []
