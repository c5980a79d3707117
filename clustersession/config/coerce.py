"""Convert raw values (strings from env/XML, natives from TOML) to a field's type.

Only the type is converted here; ranges and relations are checked by the
sections' ``__post_init__``. Errors name the key and the value.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Final, Literal, get_args, get_origin

from .errors import ConfigError

_TRUE: Final = frozenset({"true", "yes", "on", "1"})
_FALSE: Final = frozenset({"false", "no", "off", "0"})
_SIZE: Final = re.compile(r"^\s*([0-9][0-9_]*)\s*(kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_FACTOR: Final = {None: 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def coerce(key: str, value: object, annotation: Any, *, unit: str | None = None) -> object:
    """Return ``value`` as ``annotation`` (bool, int, float, str, Optional, Literal, tuple[str])."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        # TOML has no null and env/XML only have strings: "" means "unset".
        if value is None or value == "":
            return None
        (annotation,) = args
        origin = get_origin(annotation)
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ConfigError(key, value, "is not a valid choice", allowed)
        return value
    if origin is tuple:
        return _to_str_tuple(key, value)
    if annotation is bool:
        return _to_bool(key, value)
    if annotation is int:
        return _to_int(key, value, unit)
    if annotation is float:
        return _to_float(key, value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(key, value, "is not a string", "a string")
        return value
    raise TypeError(f"{key}: no conversion to {annotation!r}")  # a bug in the schema


def _to_bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ConfigError(key, value, "is not a boolean", "true/false, yes/no, on/off, 1/0")


def _to_int(key: str, value: object, unit: str | None) -> int:
    allowed = "an integer"
    if unit == "bytes":
        allowed = "an integer number of bytes, optionally with a KiB/MiB/GiB suffix"
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if unit == "bytes":
            match = _SIZE.match(text)
            if match:
                suffix = match.group(2).lower() if match.group(2) else None
                return int(match.group(1)) * _SIZE_FACTOR[suffix]
        elif re.fullmatch(r"[+-]?[0-9][0-9_]*", text):
            return int(text)
    raise ConfigError(key, value, "is not an integer", allowed)


def _to_float(key: str, value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ConfigError(key, value, "is not a number", "a number")


def _to_str_tuple(key: str, value: object) -> tuple[str, ...]:
    allowed = "a list of strings (comma-separated in env/XML)"
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(key, value, "is not a list of strings", allowed)
