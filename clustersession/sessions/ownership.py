"""Who holds a session under the backup manager: its primary, its backups, and proxies.

The primary is the node whose route the session carries (the route binder's
route, stamped and merged like any field); the backups are the next
``manager.backups`` members of the rendezvous ranking (:mod:`.placement`).
Every node computes both from the route and the membership it sees, so no
placement is ever sent: proxies keep only ``token -> (route, stamp)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..channel import Channel, Member
from ..channel.application import nodes
from .placement import backups, ranking


@dataclass(frozen=True, slots=True)
class Owners:
    """The nodes that hold copies of one session, as this node sees the members."""

    primary: bytes | None
    """The member whose route the session carries; ``None``: that member is gone."""
    backups: tuple[bytes, ...]
    """The backup copies' members; with the primary gone, the ranking's first is
    the one that takes over, and the rest its backups."""

    def __contains__(self, member_id: object) -> bool:
        return member_id == self.primary or member_id in self.backups

    @property
    def all(self) -> tuple[bytes, ...]:
        """Primary (if alive) then backups."""
        return self.backups if self.primary is None else (self.primary, *self.backups)


class Placement:
    """This node's view of the members, and the owners of any session under it."""

    def __init__(self, channel: Channel, copies: int) -> None:
        self.channel = channel
        self.copies = copies  # backups per session

    def members(self) -> dict[bytes, Member]:
        """The live nodes (tool members hold nothing), this one included, by id."""
        found = {m.id: m for m in nodes(self.channel.members)}
        found[self.channel.local.id] = self.channel.local
        return found

    def member_of(self, route: str | None, members: dict[bytes, Member]) -> bytes | None:
        """The id of the member serving ``route``, or ``None``."""
        for member_id, member in members.items():
            if member.route == route:
                return member_id
        return None

    def owners(
        self, token: str, route: str | None, members: dict[bytes, Member] | None = None
    ) -> Owners:
        """Who holds ``token``, whose route is ``route``, among ``members`` (default: live)."""
        live = self.members() if members is None else members
        primary = self.member_of(route, live)
        if primary is None:
            # The primary is gone: the first of the ranking takes over (it was the
            # first backup, since removing a member keeps the others' order).
            return Owners(None, tuple(ranking(token, live)[: self.copies + 1]))
        return Owners(primary, tuple(backups(token, primary, live, self.copies)))

    def is_owner(self, token: str, route: str | None) -> bool:
        """Whether this node holds a copy of ``token`` (primary or backup)."""
        return self.channel.local.id in self.owners(token, route)
