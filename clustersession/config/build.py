"""Building a validated config from the merged ``{dotted path: Raw}`` values.

Only the loader (:mod:`.load`) calls :func:`build`; keeping one builder means the
same conversions, checks and error messages for TOML, env and XML.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from .cluster import BaseClusterConfig
from .coerce import coerce
from .errors import NO_VALUE, ConfigError
from .schema import Raw, keys_in, section_paths, settings
from .sections import UNITS
from .send_options import parse_send_options

C = TypeVar("C", bound=BaseClusterConfig)

# Settings whose strings need more than a type conversion.
_PARSERS: Final[dict[str, Callable[[str, object], object]]] = {
    "channel_send_options": parse_send_options,
    "manager.map_send_options": parse_send_options,
}


def build(cls: type[C], values: Mapping[str, Raw]) -> C:
    """Convert and validate ``values`` (dotted path → Raw) into a ``cls`` instance."""
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
    result = _build(cls, "", values)
    assert isinstance(result, cls)
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
