"""Send options: the one definition of Tomcat's channel option bits that we implement.

Tomcat's bits (``org.apache.catalina.tribes.Channel``): 1 byte message, 2 use ack,
4 synchronized ack, 8 asynchronous, 16 secure, 32 udp, 64 multicast. Here every
message is bytes (bit 1 has no meaning), and secure/udp/multicast are not
implemented, so only combinations of 2, 4 and 8 are supported, and 4 only together
with 2 (Tomcat silently ignores a lone 4): :func:`unsupported` says why a value is not.

Two users, one rule set, one deliberate difference about 0:

* The channel's ``send(..., options)`` (:mod:`clustersession.channel.options`, which
  takes its bits from here) is Tomcat's ``Channel.send``: 0 is a valid plain
  synchronous send without acknowledgement (return once written, no ack awaited).
  So the channel accepts 0, 2, 6, 8, 10 and 14.
* The ``channel_send_options`` setting is Tomcat's ``<Cluster channelSendOptions>``,
  and Tomcat ignores values <= 0 there (the default 8 stays). Accepting 0 would
  silently mean something else than in Tomcat, so :func:`check_send_options`
  refuses it: the setting accepts 2, 6, 8, 10 and 14.
"""

from __future__ import annotations

from typing import Final

from .errors import ConfigError

ACK: Final = 2
SYNC: Final = 4
ASYNC: Final = 8

#: Every bit we implement.
SUPPORTED: Final = ACK | SYNC | ASYNC

# Tomcat's long names and the short ones its parser also accepts.
NAMES: Final[dict[str, int]] = {
    "async": ASYNC,
    "asynchronous": ASYNC,
    "ack": ACK,
    "use_ack": ACK,
    "sync": SYNC,
    "synchronized_ack": SYNC,
}

# Names Tomcat knows that we refuse, with the reason given in the error.
_REFUSED_NAMES: Final[dict[str, int]] = {
    "byte": 1,
    "byte_message": 1,
    "secure": 16,
    "udp": 32,
    "multicast": 64,
}

VALID: Final = (2, 6, 8, 10, 14)

ALLOWED_TEXT: Final = (
    "8 (async), 2 (ack), 6 (ack,sync), 10 (async,ack), 14 (async,ack,sync); "
    "names async|asynchronous, ack|use_ack, sync|synchronized_ack, comma-separated"
)


def parse_send_options(key: str, value: object) -> int:
    """Turn an int, a name, a comma-separated string of names/ints or a list into the bits."""
    if isinstance(value, bool):
        raise ConfigError(key, value, "is not a send option", ALLOWED_TEXT)
    if isinstance(value, int):
        return check_send_options(key, value)
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace("|", ",").split(",")]
    elif isinstance(value, list | tuple):
        parts = [p.strip() if isinstance(p, str) else p for p in value]
    else:
        raise ConfigError(key, value, "is not a send option", ALLOWED_TEXT)
    bits = 0
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            bits |= part
        elif isinstance(part, str) and part.lower() in NAMES:
            bits |= NAMES[part.lower()]
        elif isinstance(part, str) and part.lower() in _REFUSED_NAMES:
            bits |= _REFUSED_NAMES[part.lower()]
        elif isinstance(part, str) and part.isascii() and part.isdigit():
            bits |= int(part)
        else:
            raise ConfigError(key, value, f"has an unknown send option {part!r}", ALLOWED_TEXT)
    try:
        return check_send_options(key, bits)
    except ConfigError as exc:
        raise ConfigError(key, value, exc.problem, ALLOWED_TEXT) from None


def unsupported(value: int) -> str | None:
    """Why the bits of ``value`` cannot be sent here, or ``None``; 0 passes (see above)."""
    if value < 0:
        return "is negative (options are bits)"
    if value & 1:
        return "sets bit 1 (byte_message), which has no meaning here: messages are always bytes"
    if value & ~SUPPORTED:
        return "sets a bit >= 16 (secure, udp or multicast), which is not supported"
    if value & SYNC and not value & ACK:
        return "sets sync (4) without ack (2); sync only refines ack"
    return None


def check_send_options(key: str, value: object) -> int:
    """Check already-numeric options for the setting; the error says why a bit is refused."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(key, value, "is not a send option", ALLOWED_TEXT)
    if value <= 0:
        # Before unsupported(): it would pass 0, the channel's plain synchronous send.
        problem: str | None = "selects no delivery mode (Tomcat ignores values <= 0)"
    else:
        problem = unsupported(value)
    if problem is None:
        return value
    raise ConfigError(key, value, problem, ALLOWED_TEXT)


def describe(value: int) -> str:
    """``10`` → ``"async,ack"``: the names for an already valid value."""
    names = [n for n, bit in (("async", ASYNC), ("ack", ACK), ("sync", SYNC)) if value & bit]
    return ",".join(names)
