"""Who may share a channel with the session floor: application payloads and tool members.

One channel per process carries every kind of traffic, and the channel hands
every message to every listener. Two conventions keep its users apart:

* **Application payloads** start with :data:`APPLICATION_MARK`, the byte 0xC1,
  which msgpack never produces (the spec reserves it as "never used"). Session
  messages are msgpack lists, so they never start with it: the session floor
  skips an application payload with one byte comparison, and an application
  (the farm deployer) recognises its own payloads by a short tag after the mark,
  without decoding anything.
* **Tool members** (the ``clustersession`` command) join to do one thing and
  leave. They announce the route :data:`TOOL_ROUTE`, which no node can have
  (``jvm_route`` allows only ``[A-Za-z0-9_-]``): they own no sessions' route and
  the session floor never asks them for state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .member import Member

APPLICATION_MARK: Final = b"\xc1"
"""The first byte of every payload that is not the session floor's."""

TOOL_ROUTE: Final = "~tool"
"""The route a tool member announces (not a valid ``jvm_route``, so no node's)."""


def is_application_payload(payload: bytes) -> bool:
    """Whether ``payload`` belongs to an application, not to the session floor."""
    return payload[:1] == APPLICATION_MARK


def application_prefix(tag: bytes) -> bytes:
    """The prefix of an application's payloads: the mark, then its 4-byte ``tag``."""
    if len(tag) != 4:
        raise ValueError("an application tag is 4 bytes")
    return APPLICATION_MARK + tag


def is_tool(member: Member) -> bool:
    """Whether ``member`` is a tool member (holds no sessions, owns no route)."""
    return member.route == TOOL_ROUTE


def nodes(members: Iterable[Member]) -> list[Member]:
    """``members`` without the tool members, in the same order."""
    return [m for m in members if not is_tool(m)]
