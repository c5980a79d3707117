"""A member of the group: who it is and where its receiver listens."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Member:
    """One channel of the cluster (one process; several may share a host and route).

    ``id`` is unique per process start, so a restarted process is a new member even
    at the same address. ``started_at`` (epoch seconds) orders members oldest first.
    Equality and hashing use ``id`` only.
    """

    id: bytes
    host: str = field(compare=False)
    port: int = field(compare=False)
    route: str = field(compare=False, default="")
    domain: str = field(compare=False, default="")
    started_at: float = field(compare=False, default=0.0)

    @property
    def name(self) -> str:
        """Short human-readable name: ``route@host:port``."""
        return f"{self.route or '?'}@{self.host}:{self.port}"

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the id, for logs."""
        return self.id.hex()[:8]

    def alive_for(self, now: float | None = None) -> float:
        """Seconds since this member started."""
        return (time.time() if now is None else now) - self.started_at

    def as_dict(self, *, precision: int = 1) -> dict[str, object]:
        """Plain data for JSON (status page, the CLI): id in hex, age in seconds."""
        return {
            "id": self.id.hex(),
            "host": self.host,
            "port": self.port,
            "route": self.route,
            "alive_s": round(self.alive_for(), precision),
        }

    def __str__(self) -> str:
        return f"{self.name}#{self.short_id}"


def member_fields(member: Member) -> dict[str, str]:
    """The structured log fields of a record about ``member`` (``logger.info(..., extra=...)``).

    ``member`` is its name and short id (``route@host:port#1a2b3c4d``), as the
    messages print it, so a JSON handler can group the lines of one member.
    """
    return {"member": str(member)}


def new_member_id() -> bytes:
    """A fresh 16-byte member id."""
    return uuid.uuid4().bytes
