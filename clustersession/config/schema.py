"""The table of settings (dotted paths), derived from the config dataclasses.

Every reader (TOML file, environment, server.xml, web.xml) turns its input into
a flat ``{dotted path: Raw}`` mapping, checking keys against this table; the
loader (:mod:`.load`) merges them and :mod:`.build` converts the result.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from .cluster import BaseClusterConfig
from .sections import UNITS

ENV_PREFIX: Final = "CLUSTERSESSION_"


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
    _walk(BaseClusterConfig, "", out, set())
    return types.MappingProxyType(out)


@functools.cache
def section_paths() -> frozenset[str]:
    """Dotted paths of the sections (``membership``, ``interceptors.dispatch`` …)."""
    found: set[str] = set()
    _walk(BaseClusterConfig, "", {}, found)
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
