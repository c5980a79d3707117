"""Fetching one session from the nodes that hold it (the backup manager's read on a proxy).

A FETCH names the session; every asked node answers FETCHED with its copy, or
with nothing (and the id's tombstone when it is dead). The copies of a group are
merged: every answer, or the first copy and those that follow it within
:data:`GRACE`. One copy may miss an acknowledged write (a backup whose DELTA
failed, or one that another node's view no longer counts), and the merge keeps
the newest value of each attribute, so asking the primary with the backups makes
the answer current whenever the primary answers. When every asked node answered
without a copy, the next group is asked; nothing waits past the deadline
(Tomcat's ``rpcTimeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..channel import ChannelError, Member
from ..channel.options import ASYNCHRONOUS, USE_ACK
from .change import Change, snapshot
from .context import ReplicationContext
from .wire import Kind, Message, encode

logger = logging.getLogger("clustersession")

GRACE = 0.05
"""Seconds the other members of a group may answer after the first copy arrived
(all answer within a millisecond or two unless one is down)."""


@dataclass(slots=True)
class _Asked:
    waiting: set[bytes]
    first: asyncio.Future[None]
    """Done at the first copy or tombstone, or when every member answered."""
    everyone: asyncio.Future[None]
    """Done when every asked member answered."""
    changes: list[Change] = field(default_factory=list)
    dead: list[tuple[str, int]] = field(default_factory=list)


class Fetcher:
    """Asks groups of members for a session and serves their questions."""

    def __init__(self, context: ReplicationContext) -> None:
        self.sessions = context.sessions
        self.channel = context.channel
        self._asked: dict[int, _Asked] = {}

    async def fetch(
        self, token: str, groups: Sequence[Sequence[Member]], timeout: float
    ) -> Message | None:
        """The copies of ``token`` of the first group that has one (groups in order),
        within ``timeout``.

        The answer carries the copies (``changes``, to be merged) and dead ids;
        ``None``: nobody had it. A reply with only a tombstone is returned too (the
        id is dead).
        """
        deadline = time.monotonic() + timeout
        for group in groups:
            left = deadline - time.monotonic()
            if not group or left <= 0:
                continue
            answer = await self._ask(token, group, left)
            if answer is not None:
                return answer
        return None

    async def _ask(self, token: str, group: Sequence[Member], timeout: float) -> Message | None:
        request_id = secrets.randbits(62)
        loop = asyncio.get_running_loop()
        asked = _Asked({m.id for m in group}, loop.create_future(), loop.create_future())
        self._asked[request_id] = asked
        deadline = loop.time() + timeout
        try:
            payload = encode(Message(Kind.FETCH, request_id=request_id, token=token))
            try:
                await asyncio.wait_for(self.channel.send(group, payload, USE_ACK), timeout)
            except ChannelError as exc:
                for member in exc.failed:
                    self._answered(asked, member.id, None)
            except TimeoutError:
                pass  # a member did not acknowledge in time: what the others sent counts
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asked.first), deadline - loop.time())
            if not (asked.changes or asked.dead):
                return None
            left = min(GRACE, deadline - loop.time())
            if not asked.everyone.done() and left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(asked.everyone), left)
            return Message(
                Kind.FETCHED, request_id=request_id, changes=asked.changes, dead=asked.dead
            )
        finally:
            del self._asked[request_id]

    def _answered(self, asked: _Asked, member_id: bytes, message: Message | None) -> None:
        if member_id not in asked.waiting:
            return  # a duplicate, or a member that was not asked
        asked.waiting.discard(member_id)
        if message is not None and (message.changes or message.dead):
            asked.changes.extend(message.changes)
            asked.dead.extend(message.dead)
            if not asked.first.done():
                asked.first.set_result(None)
        if not asked.waiting:
            for done in (asked.first, asked.everyone):
                if not done.done():
                    done.set_result(None)

    def received(self, sender: Member, message: Message) -> None:
        """A FETCHED: hand it to the fetch that asked (late ones are ignored)."""
        asked = self._asked.get(message.request_id)
        if asked is not None:
            self._answered(asked, sender.id, message)

    async def serve(self, member: Member, request_id: int, token: str) -> None:
        """Answer a FETCH with our copy of ``token`` (or nothing, or its tombstone)."""
        record = self.sessions.store.get(token)
        changes: list[Change] = [] if record is None else [snapshot(record)]
        tomb = self.sessions.tombstones.get(token)
        dead = [] if tomb is None else [(token, tomb[0])]
        reply = Message(Kind.FETCHED, request_id=request_id, changes=changes, dead=dead)
        with contextlib.suppress(ChannelError):
            await self.channel.send([member], encode(reply), ASYNCHRONOUS)
