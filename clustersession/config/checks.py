"""Validation helpers used by the ``__post_init__`` of every section.

They check already-typed values (what a Python caller passes to a constructor,
or what the loaders produced with :mod:`.coerce`) and raise :class:`ConfigError`
naming the dotted key, the value and what is allowed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection

from .errors import ConfigError

# RFC 1123 host names; the receiver and static members may name hosts that only
# resolve at run time, so we check the spelling, not the resolution.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def check_bool(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "is not a boolean", "true or false")
    return value


def check_int(
    key: str,
    value: object,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allowed: str | None = None,
    extra: Collection[int] = (),
) -> int:
    """Check an int in ``minimum..maximum``; ``extra`` values (e.g. -1) are also allowed."""
    if allowed is None:
        allowed = _range_text(minimum, maximum, extra)
    # bool is an int subclass, but "port = true" is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(key, value, "is not an integer", allowed)
    if value in extra:
        return value
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(key, value, "is out of range", allowed)
    return value


def check_float(key: str, value: object, *, minimum_exclusive: float = 0.0) -> float:
    allowed = f"a number > {minimum_exclusive:g}"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(key, value, "is not a number", allowed)
    if not value > minimum_exclusive or value != value or value == float("inf"):
        raise ConfigError(key, value, "is out of range", allowed)
    return float(value)


def check_str(key: str, value: object, *, allowed: str = "a string") -> str:
    if not isinstance(value, str):
        raise ConfigError(key, value, "is not a string", allowed)
    return value


def check_url_path(key: str, value: object) -> str:
    """``""`` (off) or a request path starting with ``/``."""
    path = check_str(key, value, allowed="'' or a path starting with '/'")
    if path and not path.startswith("/"):
        raise ConfigError(key, path, "does not start with '/'", "'' or '/...'")
    return path


def check_regex(key: str, value: object) -> str:
    pattern = check_str(key, value, allowed="a Python regular expression")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            key, value, f"is not a valid regular expression ({exc})", "a Python regular expression"
        ) from None
    return pattern


def check_choice(key: str, value: object, choices: Collection[str]) -> str:
    allowed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(key, value, "is not a valid choice", allowed)
    return value


def check_port(key: str, value: object) -> int:
    return check_int(key, value, minimum=1, maximum=65535)


def is_host(text: str) -> bool:
    """True for an IPv4/IPv6 address or a syntactically valid host name."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_HOSTNAME.match(text))
    return True


def check_host(key: str, value: object, *, allowed: str = "an IP address or host name") -> str:
    text = check_str(key, value, allowed=allowed)
    if not is_host(text):
        raise ConfigError(key, value, "is not a valid host", allowed)
    return text


def check_ip(key: str, value: object) -> str:
    allowed = "an IPv4 or IPv6 address"
    text = check_str(key, value, allowed=allowed)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(key, value, "is not an IP address", allowed) from None
    return text


def split_host_port(text: str) -> tuple[str, int] | None:
    """Split ``host:port`` or ``[v6]:port``; None when the text is not of that form."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not is_host(host) or ":" in host:
            return None
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host, int(port)


def _range_text(minimum: int | None, maximum: int | None, extra: Collection[int]) -> str:
    if minimum is not None and maximum is not None:
        text = f"an integer {minimum}..{maximum}"
    elif minimum is not None:
        text = f"an integer >= {minimum}"
    elif maximum is not None:
        text = f"an integer <= {maximum}"
    else:
        text = "an integer"
    if extra:
        text += " or " + " or ".join(str(e) for e in extra)
    return text
