"""Read a TOML configuration file into ``{dotted path: Raw}``.

Named so as not to shadow the stdlib ``tomllib``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from .errors import NO_VALUE, ConfigError
from .schema import Raw, keys_in, section_paths, settings


def read_toml(path: str | os.PathLike[str]) -> dict[str, Raw]:
    """The settings in the TOML file ``path``; errors name the file."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(
            name, NO_VALUE, f"cannot be read ({exc.strerror})", "a readable TOML file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, NO_VALUE, f"is not valid TOML ({exc})", "a TOML file") from None
    return toml_values(data, name)


def toml_values(data: Mapping[str, Any], filename: str) -> dict[str, Raw]:
    """Flatten the parsed TOML into dotted paths, refusing unknown sections and keys."""
    out: dict[str, Raw] = {}
    _flatten(data, "", f"in {filename}", out)
    return out


def _flatten(table: Mapping[str, Any], prefix: str, source: str, out: dict[str, Raw]) -> None:
    known = settings()
    sections = section_paths()
    for key, value in table.items():
        path = prefix + key
        if path in sections:
            if not isinstance(value, dict):
                raise ConfigError(
                    path, value, "is a section, not a value", f"a [{path}] table", source=source
                )
            _flatten(value, path + ".", source, out)
        elif path in known:
            out[path] = Raw(value, source)
        elif isinstance(value, dict):
            parent = prefix[:-1]
            where = f"[{parent}]" if parent else "the top level"
            raise ConfigError(
                path,
                "<table>",
                f"is an unknown section [{path}]",
                f"sections and keys in {where}: " + ", ".join(keys_in(parent)),
                source=source,
            )
        else:
            raise ConfigError(
                path,
                value,
                "is an unknown key",
                "keys " + ", ".join(keys_in(prefix[:-1])),
                source=source,
            )
