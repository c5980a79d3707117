"""The multicast heartbeat datagram, and the guard that refuses replayed ones.

Layout (``docs/protocol.md``)::

    b"CSHB" | version u8 | body | tag (HMAC-SHA256 over all before it; empty without a secret)
    body: msgpack [domain, member record, incarnation, leaving, timestamp ms, counter]

``counter`` increases with every heartbeat of a process and ``timestamp`` is its
wall clock: a receiver refuses a heartbeat whose counter it has already seen from
that member, or whose timestamp is outside the replay window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import msgpack

from ..errors import AuthError, FrameError
from ..member import Member
from ..security import Keys
from ..transport.connection import member_record, parse_member_record

MAGIC: Final = b"CSHB"
VERSION: Final = 1
MAX_DATAGRAM: Final = 4096


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One member's announcement of itself."""

    domain: str
    member: Member
    incarnation: int
    leaving: bool
    timestamp_ms: int
    counter: int


def encode(heartbeat: Heartbeat, keys: Keys) -> bytes:
    """The datagram for ``heartbeat``, tagged with the heartbeat key."""
    body: bytes = msgpack.packb(
        [
            heartbeat.domain,
            member_record(heartbeat.member),
            heartbeat.incarnation,
            heartbeat.leaving,
            heartbeat.timestamp_ms,
            heartbeat.counter,
        ],
        use_bin_type=True,
    )
    head = MAGIC + bytes([VERSION]) + body
    return head + keys.tag(keys.heartbeat, head)


def decode(datagram: bytes, keys: Keys, *, source_host: str) -> Heartbeat:
    """Check and parse a datagram; ``source_host`` fills in an unannounced address."""
    if len(datagram) > MAX_DATAGRAM:
        raise FrameError(f"heartbeat of {len(datagram)} bytes is over {MAX_DATAGRAM}")
    if not datagram.startswith(MAGIC):
        raise FrameError("not a clustersession heartbeat")
    tag_size = keys.tag_size
    if len(datagram) < len(MAGIC) + 1 + tag_size:
        raise FrameError("heartbeat is truncated")
    head, tag = datagram[: len(datagram) - tag_size], datagram[len(datagram) - tag_size :]
    if keys.verifying_key(keys.heartbeats, tag, head) is None:
        raise AuthError("heartbeat tag does not verify (wrong secret or tampered)")
    if head[len(MAGIC)] != VERSION:
        raise FrameError(f"heartbeat version {head[len(MAGIC)]}, expected {VERSION}")
    try:
        fields = msgpack.unpackb(head[len(MAGIC) + 1 :], raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise FrameError(f"heartbeat body is not msgpack: {exc}") from exc
    if not isinstance(fields, list) or len(fields) != 6:
        raise FrameError("heartbeat body is not a 6-field list")
    domain, record, incarnation, leaving, timestamp_ms, counter = fields
    if not isinstance(domain, str) or not isinstance(leaving, bool):
        raise FrameError("heartbeat domain or leaving flag has the wrong type")
    if not all(isinstance(v, int) for v in (incarnation, timestamp_ms, counter)):
        raise FrameError("heartbeat counters must be integers")
    member = parse_member_record(record, host=source_host)
    return Heartbeat(domain, member, incarnation, leaving, timestamp_ms, counter)


class ReplayGuard:
    """Refuses heartbeats seen before, or too old or too new to be fresh.

    Remembers the highest counter per member id for ``window`` seconds after it
    was last seen, which is as long as a recorded heartbeat stays acceptable.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._last: dict[bytes, tuple[int, float]] = {}

    def check(self, heartbeat: Heartbeat, now: float | None = None) -> None:
        """Raise :class:`AuthError` for a replayed or stale heartbeat; else record it."""
        now = time.time() if now is None else now
        skew = abs(now - heartbeat.timestamp_ms / 1000)
        if skew > self.window:
            raise AuthError(f"heartbeat timestamp is {skew:.1f} s off (window {self.window} s)")
        member_id = heartbeat.member.id
        seen = self._last.get(member_id)
        if seen is not None and heartbeat.counter <= seen[0]:
            raise AuthError(f"heartbeat counter {heartbeat.counter} already seen (replay)")
        self._last[member_id] = (heartbeat.counter, now)
        if len(self._last) > 1024:
            self._forget(now)

    def _forget(self, now: float) -> None:
        stale = [k for k, (_, seen_at) in self._last.items() if now - seen_at > self.window]
        for key in stale:
            del self._last[key]
