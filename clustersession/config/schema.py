"""The list of settings (dotted paths) and building a config from raw values.

Every loader turns its input into a flat ``{dotted path: Raw}`` mapping, merges
them (later sources win) and calls :func:`build`. Keeping one builder means the
same conversions, checks and error messages for TOML, env and XML.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

from .cluster import ClusterConfig
from .coerce import coerce
from .errors import NO_VALUE, ConfigError
from .sections import UNITS
from .send_options import parse_send_options

ENV_PREFIX: Final = "CLUSTERSESSION_"

# Settings whose strings need more than a type conversion.
_PARSERS: Final[dict[str, Callable[[str, object], object]]] = {
    "channel_send_options": parse_send_options,
}


class Raw(NamedTuple):
    """A value before conversion, and where it came from (for error messages)."""

    value: object
    source: str | None = None


@dataclasses.dataclass(frozen=True)
class SettingInfo:
    """One leaf setting: dotted ``path``, Python type, unit and default."""

    path: str
    annotation: Any
    unit: str | None
    default: object

    @property
    def env_name(self) -> str:
        return env_name(self.path)


def env_name(path: str) -> str:
    """``membership.port`` → ``CLUSTERSESSION_MEMBERSHIP__PORT``."""
    return ENV_PREFIX + path.upper().replace(".", "__")


@functools.cache
def settings() -> Mapping[str, SettingInfo]:
    """Every leaf setting by dotted path, in declaration order (read-only)."""
    out: dict[str, SettingInfo] = {}
    _walk(ClusterConfig, "", out, set())
    return types.MappingProxyType(out)


@functools.cache
def section_paths() -> frozenset[str]:
    """Dotted paths of the sections (``membership``, ``interceptors.dispatch`` …)."""
    found: set[str] = set()
    _walk(ClusterConfig, "", {}, found)
    return frozenset(found)


def _walk(cls: type, prefix: str, out: dict[str, SettingInfo], sections: set[str]) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        annotation = hints[f.name]
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            sections.add(path)
            _walk(annotation, path + ".", out, sections)
            continue
        if f.default is not dataclasses.MISSING:
            default: object = f.default
        else:
            default = "<computed>"  # jvm_route: the host name at load time
        out[path] = SettingInfo(path, annotation, UNITS.get(path), default)


def keys_in(section: str) -> list[str]:
    """Names allowed directly under ``section`` (``""`` = top level)."""
    prefix = section + "." if section else ""
    names = {
        p[len(prefix) :].split(".")[0]
        for p in (*settings(), *section_paths())
        if p.startswith(prefix)
    }
    return sorted(names)


def build(values: Mapping[str, Raw]) -> ClusterConfig:
    """Convert and validate ``values`` (dotted path → Raw) into a :class:`ClusterConfig`."""
    known = settings()
    for path, raw in values.items():
        if path not in known:
            section = path.rpartition(".")[0]
            problem = (
                f"is not a known setting (value {raw.value!r})"
                if section in section_paths() or not section
                else "is in an unknown section"
            )
            raise ConfigError(
                path,
                NO_VALUE,
                problem,
                "keys " + ", ".join(keys_in(section if section in section_paths() else "")),
                source=raw.source,
            )
    result = _build(ClusterConfig, "", values)
    assert isinstance(result, ClusterConfig)
    return result


def _build(cls: type, prefix: str, values: Mapping[str, Raw]) -> object:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        annotation = hints[f.name]
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            kwargs[f.name] = _build(annotation, path + ".", values)
            continue
        raw = values.get(path)
        if raw is None:
            continue
        parser = _PARSERS.get(path)
        try:
            if parser is not None:
                kwargs[f.name] = parser(path, raw.value)
            else:
                kwargs[f.name] = coerce(path, raw.value, annotation, unit=UNITS.get(path))
        except ConfigError as exc:
            if parser is None:
                exc = _with_range(exc, cls, kwargs, f.name, annotation)
            raise exc.with_source(raw.source) from None
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raw = values.get(exc.key)
        raise exc.with_source(raw.source if raw else None) from None


def _with_range(
    exc: ConfigError, cls: type, kwargs: Mapping[str, object], name: str, annotation: Any
) -> ConfigError:
    """Prefer the section's own error for a non-number: it states the allowed range.

    The section's ``__post_init__`` refuses a string for a number with e.g.
    "allowed: an integer 1..65535", which the type conversion cannot know.
    """
    if annotation not in (int, float) or UNITS.get(exc.key) == "bytes":
        return exc
    try:
        cls(**{**kwargs, name: exc.value})
    except ConfigError as own:
        if own.key == exc.key:
            return own
    return exc
