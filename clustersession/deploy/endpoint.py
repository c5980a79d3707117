"""``FarmEndpoint``: the deployer's side of the shared channel (nodes and the command).

It recognises farm payloads by their prefix (anything else is another floor's
and ignored), matches answers to the requests waiting for them (by member and
request id), serves chunks of the artifacts it offers, and hands every other
message to a handler. Handlers run in background tasks: the channel's receive
path never waits for file work; while one runs, the asker is sent PROGRESS every
:data:`~.wire.PROGRESS_INTERVAL`, so that an asker can give up on a member that
stays silent (:class:`Silent`) without giving up on one that is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from ..channel import Channel, ChannelError, ChannelMessage, Member
from ..channel import options as send_options
from ..channel.tasks import BackgroundTasks
from .transfer import TransferError, read_range
from .wire import PROGRESS_INTERVAL, FarmWireError, Kind, Message, decode, encode, is_farm_payload

logger = logging.getLogger("clustersession.deploy")

CHUNK_TIMEOUT: Final = 60.0
"""Seconds a chunk may take before the transfer is given up."""

ANSWERS: Final = frozenset((Kind.RESULT, Kind.LISTING, Kind.CHUNK))
REPLY_TIMEOUT: Final = 10.0
"""Seconds a member may go without answering or saying PROGRESS before it counts as silent."""


class Silent(TimeoutError):
    """A member said nothing (no answer, no PROGRESS) for the allowed silence."""


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
        self._heard: dict[tuple[bytes, int], float] = {}  # when the asked member last spoke
        self.progress_received = 0
        channel.add_listener(self._received)
        channel.add_membership_listener(self)

    # -- sending ------------------------------------------------------------------------

    async def send(self, member: Member, message: Message) -> None:
        """Send ``message`` to ``member``, acknowledged (raises ChannelError)."""
        await self.channel.send([member], encode(message), send_options.USE_ACK)

    async def ask(
        self,
        member: Member,
        message: Message,
        timeout: float | None,
        *,
        silence: float | None = None,
    ) -> Message:
        """Send a request (its id is set here) and wait for ``member``'s answer.

        Raises ``TimeoutError`` after ``timeout`` seconds in all, and
        :class:`Silent` once ``member`` went ``silence`` seconds without a word
        (its answer or a PROGRESS): a member without a farm deployer never answers.
        """
        message.request = secrets.randbits(62)
        key = (member.id, message.request)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()
        self._waiting[key] = future
        self._heard[key] = loop.time()
        try:
            await self.send(member, message)
            deadline = None if timeout is None else loop.time() + timeout
            while True:
                until = deadline
                if silence is not None:  # moves on with every PROGRESS
                    quiet = self._heard[key] + silence
                    until = quiet if until is None else min(until, quiet)
                wait = None if until is None else max(until - loop.time(), 0.0)
                await asyncio.wait((future,), timeout=wait)
                if future.done():
                    return future.result()
                now = loop.time()
                if deadline is not None and now >= deadline:
                    raise TimeoutError(f"no answer within {timeout:g} s")
                if silence is not None and now >= self._heard[key] + silence:
                    raise Silent(
                        f"silent: no answer and no progress for {silence:g} s "
                        "(no farm deployer there, or it is stuck)"
                    )
        finally:
            self._waiting.pop(key, None)
            self._heard.pop(key, None)
            if future.done() and not future.cancelled():
                future.exception()  # the member left while we sent: the send's error is raised

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
        if decoded.kind is Kind.PROGRESS:
            key = (sender.id, decoded.request)
            if key in self._heard:
                self._heard[key] = asyncio.get_running_loop().time()
                self.progress_received += 1
        elif decoded.kind in ANSWERS:
            future = self._waiting.get((sender.id, decoded.request))
            if future is not None and not future.done():
                future.set_result(decoded)
        elif decoded.kind is Kind.FETCH:
            self.tasks.spawn(self._serve(sender, decoded), "clustersession-farm-serve")
        elif self._handler is not None:
            work = self._handle(self._handler, sender, decoded)
            self.tasks.spawn(work, f"clustersession-farm-{decoded.kind}")

    async def _handle(self, handler: Handler, member: Member, request: Message) -> None:
        """Run ``handler``, telling ``member`` every PROGRESS_INTERVAL that it still works."""
        beating = asyncio.ensure_future(self._beat(member, request.request))
        try:
            await handler(member, request)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _beat(self, member: Member, request: int) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            try:
                await self.send(member, Message(Kind.PROGRESS, request=request))
            except ChannelError as exc:
                logger.info("could not tell %s of progress: %s", member, exc)

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
