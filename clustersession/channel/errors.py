"""Errors of the group channel."""

from __future__ import annotations

from collections.abc import Iterable

from .member import Member


class ChannelError(Exception):
    """A send did not reach some members; ``failed`` maps each to the reason."""

    def __init__(self, failed: dict[Member, BaseException]) -> None:
        self.failed = failed
        names = ", ".join(f"{m.name} ({type(exc).__name__}: {exc})" for m, exc in failed.items())
        super().__init__(f"send failed for {len(failed)} member(s): {names}")

    @property
    def members(self) -> Iterable[Member]:
        """The members the message did not reach."""
        return self.failed.keys()


class FrameError(ValueError):
    """Bytes on a connection that are not a valid frame; the connection is closed."""


class AuthError(FrameError):
    """A frame or heartbeat whose tag does not verify (wrong secret, tampering, replay)."""


class OversizeError(FrameError):
    """A frame longer than ``receiver.max_message_size``."""


def refusal_reason(error: FrameError) -> str:
    """The kind of a refused frame, as the metrics label it: auth, oversize or malformed."""
    if isinstance(error, AuthError):
        return "auth"
    if isinstance(error, OversizeError):
        return "oversize"
    return "malformed"


class RemoteProcessError(Exception):
    """The peer received the message but its listener failed (Tomcat's FAIL_ACK)."""
