"""``FarmEndpoint``: the deployer's side of the shared channel (nodes and the command).

It recognises farm payloads by their prefix (anything else is another floor's
and ignored), matches answers to the requests waiting for them (by member and
request id), serves chunks of the artifacts it offers, and hands every other
message to a handler. Handlers run in background tasks: the channel's receive
path never waits for file work.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from ..channel import Channel, ChannelError, ChannelMessage, Member
from ..channel import options as send_options
from ..channel.tasks import BackgroundTasks
from .transfer import TransferError, read_range
from .wire import FarmWireError, Kind, Message, decode, encode, is_farm_payload

logger = logging.getLogger("clustersession.deploy")

CHUNK_TIMEOUT: Final = 60.0
"""Seconds a chunk may take before the transfer is given up."""

ANSWERS: Final = frozenset((Kind.RESULT, Kind.LISTING, Kind.CHUNK))

Handler = Callable[[Member, Message], Coroutine[Any, Any, None]]
Offers = Callable[[str], Awaitable[Path | None]]


class FarmEndpoint:
    """Farm messages in and out over ``channel``; ``handler`` gets requests."""

    def __init__(self, channel: Channel, *, handler: Handler | None, offers: Offers) -> None:
        self.channel = channel
        self.tasks = BackgroundTasks(logger)
        self.bad_messages = 0
        self._handler = handler
        self._offers = offers
        self._waiting: dict[tuple[bytes, int], asyncio.Future[Message]] = {}
        channel.add_listener(self._received)
        channel.add_membership_listener(self)

    # -- sending ------------------------------------------------------------------------

    async def send(self, member: Member, message: Message) -> None:
        """Send ``message`` to ``member``, acknowledged (raises ChannelError)."""
        await self.channel.send([member], encode(message), send_options.USE_ACK)

    async def ask(self, member: Member, message: Message, timeout: float | None) -> Message:
        """Send a request (its id is set here) and wait for ``member``'s answer."""
        message.request = secrets.randbits(62)
        key = (member.id, message.request)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            await self.send(member, message)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(key, None)

    async def stop(self) -> None:
        """Cancel the handlers and serving still running."""
        await self.tasks.cancel_all()

    # -- receiving ----------------------------------------------------------------------

    def _received(self, message: ChannelMessage) -> None:
        if not is_farm_payload(message.payload):
            return  # the session floor's (or another application's)
        try:
            decoded = decode(message.payload)
        except FarmWireError as exc:
            self.bad_messages += 1
            logger.warning("dropped a farm message from %s: %s", message.sender, exc)
            return
        sender = message.sender
        if decoded.kind in ANSWERS:
            future = self._waiting.get((sender.id, decoded.request))
            if future is not None and not future.done():
                future.set_result(decoded)
        elif decoded.kind is Kind.FETCH:
            self.tasks.spawn(self._serve(sender, decoded), "clustersession-farm-serve")
        elif self._handler is not None:
            self.tasks.spawn(self._handler(sender, decoded), f"clustersession-farm-{decoded.kind}")

    async def _serve(self, member: Member, fetch: Message) -> None:
        """Answer a FETCH with a chunk of the artifact of that digest, or an error."""
        answer = Message(Kind.CHUNK, request=fetch.request, offset=fetch.offset)
        path = await self._offers(fetch.digest)
        if path is None:
            answer.detail = f"no artifact with digest {fetch.digest[:12]} here"
        else:
            try:
                answer.data = await asyncio.to_thread(
                    read_range, path, fetch.offset, min(fetch.length, 16 * 1024 * 1024)
                )
            except OSError as exc:
                answer.detail = f"cannot read {path.name}: {exc}"
        try:
            await self.send(member, answer)
        except ChannelError as exc:
            logger.info("could not send a chunk to %s: %s", member, exc)

    # -- membership (a member that leaves answers nothing more) ---------------------------

    def member_added(self, member: Member) -> None:
        """Nothing to do: requests go to members known when they are made."""

    def member_disappeared(self, member: Member, reason: str) -> None:
        """Fail the requests waiting for ``member``."""
        for (member_id, _), future in list(self._waiting.items()):
            if member_id == member.id and not future.done():
                future.set_exception(TransferError(f"{member} left ({reason})"))


class PeerSource:
    """The chunks of one artifact (by digest) from a peer, for :func:`~.transfer.receive`."""

    def __init__(self, endpoint: FarmEndpoint, member: Member, digest: str) -> None:
        self.endpoint = endpoint
        self.member = member
        self.digest = digest

    async def read(self, offset: int, length: int) -> bytes:
        request = Message(Kind.FETCH, digest=self.digest, offset=offset, length=length)
        try:
            answer = await self.endpoint.ask(self.member, request, CHUNK_TIMEOUT)
        except (ChannelError, TimeoutError) as exc:
            raise TransferError(
                f"chunk at {offset} from {self.member}: {exc or 'timeout'}"
            ) from exc
        if answer.detail:
            raise TransferError(f"{self.member}: {answer.detail}")
        return answer.data
