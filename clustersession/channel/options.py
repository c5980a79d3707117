"""Send options: Tomcat's ``Channel.SEND_OPTIONS_*`` bits that mean something here."""

from __future__ import annotations

from typing import Final

USE_ACK: Final = 2
"""The receiver acknowledges when it has read the message."""

SYNC_ACK: Final = 4
"""With USE_ACK: the receiver acknowledges after its listeners processed the message."""

ASYNCHRONOUS: Final = 8
"""``send`` returns at once; the dispatch queue sends the message."""

DEFAULT: Final = ASYNCHRONOUS

_KNOWN: Final = USE_ACK | SYNC_ACK | ASYNCHRONOUS


def check(options: int) -> int:
    """``options`` if every bit is one of ours, else ``ValueError``."""
    if options & ~_KNOWN or options < 0:
        raise ValueError(f"send options {options}: only bits 2, 4 and 8 are supported")
    if options & SYNC_ACK and not options & USE_ACK:
        raise ValueError(f"send options {options}: SYNC_ACK (4) needs USE_ACK (2)")
    return options
