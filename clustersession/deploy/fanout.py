"""Asking every member the same thing and collecting who confirmed: the farm's verdict.

Used by a node that deploys from its watch directory and by the command. A
member that answers "no", does not answer in time, stays silent (no answer and
no PROGRESS for ``silence`` seconds), or leaves is a failure, named with its reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..channel import ChannelError, Member
from .endpoint import FarmEndpoint
from .transfer import TransferError
from .wire import Message


@dataclass(frozen=True, slots=True)
class Outcome:
    """Who confirmed, and why the others did not."""

    confirmed: list[Member] = field(default_factory=list)
    failed: dict[Member, str] = field(default_factory=dict)
    details: dict[Member, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every member asked confirmed."""
        return not self.failed


async def ask_all(
    endpoint: FarmEndpoint,
    members: Sequence[Member],
    make: Callable[[], Message],
    timeout: float | None,
    *,
    silence: float | None = None,
) -> Outcome:
    """Send ``make()`` to each of ``members`` and wait for each RESULT (concurrently)."""

    async def one(member: Member) -> Message:
        return await endpoint.ask(member, make(), timeout, silence=silence)

    answers = await asyncio.gather(*(one(m) for m in members), return_exceptions=True)
    outcome = Outcome()
    for member, answer in zip(members, answers, strict=True):
        if isinstance(answer, asyncio.CancelledError):
            raise answer
        if isinstance(answer, TimeoutError):
            outcome.failed[member] = str(answer) or f"no answer within {timeout} s"
        elif isinstance(answer, ChannelError | TransferError):
            outcome.failed[member] = str(answer)
        elif isinstance(answer, BaseException):
            raise answer
        elif answer.ok:
            outcome.confirmed.append(member)
            outcome.details[member] = answer.detail
        else:
            outcome.failed[member] = answer.detail
    return outcome
