"""``channel_send_options``: Tomcat's channel option bits, restricted to those we implement.

Tomcat's bits (``org.apache.catalina.tribes.Channel``): 1 byte message, 2 use ack,
4 synchronized ack, 8 asynchronous, 16 secure, 32 udp, 64 multicast. Here every
message is bytes (bit 1 has no meaning), and secure/udp/multicast are not
implemented, so only combinations of 2, 4 and 8 are accepted, and 4 only together
with 2 (Tomcat silently ignores a lone 4). That leaves 2, 6, 8, 10 and 14.
"""

from __future__ import annotations

from typing import Final

from .errors import ConfigError

ACK: Final = 2
SYNC: Final = 4
ASYNC: Final = 8

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


def check_send_options(key: str, value: object) -> int:
    """Check already-numeric options; the error says why a bit is refused."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(key, value, "is not a send option", ALLOWED_TEXT)
    if value <= 0:
        problem = "selects no delivery mode (Tomcat ignores values <= 0)"
    elif value & 1:
        problem = "sets bit 1 (byte_message), which has no meaning here: messages are always bytes"
    elif value >= 16:
        problem = "sets a bit >= 16 (secure, udp or multicast), which is not supported"
    elif value & SYNC and not value & ACK:
        problem = "sets sync (4) without ack (2); sync only refines ack"
    else:
        return value
    raise ConfigError(key, value, problem, ALLOWED_TEXT)


def describe(value: int) -> str:
    """``10`` → ``"async,ack"``: the names for an already valid value."""
    names = [n for n, bit in (("async", ASYNC), ("ack", ACK), ("sync", SYNC)) if value & bit]
    return ",".join(names)
