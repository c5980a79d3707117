"""``FarmClient``: what the ``clustersession farm`` command does, as a tool member.

It joins on a channel made with ``tool=True`` (no route, no sessions, never
asked for state), offers the artifact it deploys from its local file (the
nodes fetch the chunks from it), waits for every node's answer, and leaves. A
node that says nothing (no answer, no PROGRESS) for ``reply_timeout`` seconds
fails at once; one that leaves the membership fails when it goes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..channel import Channel, ChannelError, Member
from ..channel.application import nodes
from .endpoint import REPLY_TIMEOUT, FarmEndpoint
from .fanout import Outcome, ask_all
from .names import check_name
from .transfer import TransferError, file_digest
from .wire import Entry, Kind, Message


@dataclass(frozen=True, slots=True)
class Listing:
    """Each node's artifacts, and the nodes that did not answer."""

    entries: dict[Member, list[Entry]] = field(default_factory=dict)
    failed: dict[Member, str] = field(default_factory=dict)


class FarmClient:
    """Farm operations over a started tool channel."""

    def __init__(
        self, channel: Channel, *, timeout: float, reply_timeout: float = REPLY_TIMEOUT
    ) -> None:
        self.channel = channel
        self.timeout = timeout
        self.reply_timeout = reply_timeout
        self._offered: dict[str, Path] = {}
        self.endpoint = FarmEndpoint(channel, handler=None, offers=self._offer)

    async def _offer(self, digest: str) -> Path | None:
        return self._offered.get(digest)

    async def wait_for_nodes(self, minimum: int, patience: float) -> list[Member]:
        """The nodes, once at least ``minimum`` are known or ``patience`` seconds passed."""
        deadline = time.monotonic() + patience
        while len(nodes(self.channel.members)) < minimum and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return nodes(self.channel.members)

    async def deploy(self, path: Path, name: str, members: list[Member]) -> Outcome:
        """Deploy the local file ``path`` as ``name`` on ``members``."""
        check_name(name)
        size, digest = await asyncio.to_thread(file_digest, path)
        at = time.time()
        self._offered[digest] = path
        try:
            return await ask_all(
                self.endpoint,
                members,
                lambda: Message(Kind.ANNOUNCE, name=name, size=size, digest=digest, at=at),
                self.timeout,
                silence=self.reply_timeout,
            )
        finally:
            self._offered.pop(digest, None)

    async def undeploy(self, name: str, members: list[Member]) -> Outcome:
        """Undeploy ``name`` from ``members``."""
        check_name(name)
        at = time.time()
        return await ask_all(
            self.endpoint,
            members,
            lambda: Message(Kind.UNDEPLOY, name=name, at=at),
            self.timeout,
            silence=self.reply_timeout,
        )

    async def list(self, members: list[Member]) -> Listing:
        """What each of ``members`` has deployed."""

        async def one(member: Member) -> Message:
            return await self.endpoint.ask(
                member, Message(Kind.LIST), self.timeout, silence=self.reply_timeout
            )

        answers = await asyncio.gather(*(one(m) for m in members), return_exceptions=True)
        listing = Listing()
        for member, answer in zip(members, answers, strict=True):
            if isinstance(answer, TimeoutError | ChannelError | TransferError):
                listing.failed[member] = str(answer) or "no answer"
            elif isinstance(answer, BaseException):
                raise answer
            else:
                listing.entries[member] = answer.entries
        return listing

    async def stop(self) -> None:
        """Stop serving (the caller stops the channel)."""
        await self.endpoint.stop()
