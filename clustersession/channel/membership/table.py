"""The current members and when each was last heard from."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..member import Member


@dataclass(slots=True)
class MemberState:
    """What the table knows of one member."""

    member: Member
    last_heard: float  # time.monotonic()
    incarnation: int = 0


class MemberTable:
    """Members by id; ordered oldest first (longest-lived, then by id) when listed."""

    def __init__(self) -> None:
        self._states: dict[bytes, MemberState] = {}
        # The ordered list, until a member is added or removed: the backup manager
        # asks for the members on every write, and sorting them each time showed.
        self._ordered: list[Member] | None = None

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._states

    def __len__(self) -> int:
        return len(self._states)

    def get(self, member_id: bytes) -> MemberState | None:
        """The state of a member, if it is one."""
        return self._states.get(member_id)

    def add(self, member: Member, *, now: float | None = None) -> bool:
        """Add a member; False if it already was one."""
        if member.id in self._states:
            return False
        heard = time.monotonic() if now is None else now
        self._states[member.id] = MemberState(member, heard)
        self._ordered = None
        return True

    def heard(self, member_id: bytes, *, incarnation: int | None = None) -> None:
        """Record a sign of life (heartbeat, PONG, any frame)."""
        state = self._states.get(member_id)
        if state is not None:
            state.last_heard = time.monotonic()
            if incarnation is not None and incarnation > state.incarnation:
                state.incarnation = incarnation

    def remove(self, member_id: bytes) -> Member | None:
        """Remove a member; return it if it was one."""
        state = self._states.pop(member_id, None)
        if state is None:
            return None
        self._ordered = None
        return state.member

    def members(self) -> list[Member]:
        """Every member, oldest first (a list of the caller's own)."""
        if self._ordered is None:
            states = self._states.values()
            self._ordered = sorted((s.member for s in states), key=lambda m: (m.started_at, m.id))
        return list(self._ordered)

    def silent(self, limit: float, *, now: float | None = None) -> list[Member]:
        """Members not heard from for more than ``limit`` seconds."""
        now = time.monotonic() if now is None else now
        return [s.member for s in self._states.values() if now - s.last_heard > limit]

    def credit(self, seconds: float) -> None:
        """Forgive ``seconds`` of silence: time when we could not listen is not theirs."""
        for state in self._states.values():
            state.last_heard += seconds
