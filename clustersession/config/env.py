"""Read the ``CLUSTERSESSION_*`` environment variables into ``{dotted path: Raw}``.

Scheme: ``CLUSTERSESSION_`` + the dotted setting path in upper case with ``.``
written as ``__``: ``jvm_route`` → ``CLUSTERSESSION_JVM_ROUTE``,
``membership.port`` → ``CLUSTERSESSION_MEMBERSHIP__PORT``,
``interceptors.dispatch.always_send`` → ``CLUSTERSESSION_INTERCEPTORS__DISPATCH__ALWAYS_SEND``.
Lists are comma-separated. Any other ``CLUSTERSESSION_*`` variable is an error,
except the ones in :data:`EXTRA_VARIABLES`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Final

from .errors import NO_VALUE, ConfigError
from .schema import ENV_PREFIX, Raw, settings

CONFIG_VARIABLE: Final = ENV_PREFIX + "CONFIG"
SECRET_FILE_VARIABLE: Final = ENV_PREFIX + "SECRET_FILE"

#: Variables with the prefix that are not settings: the TOML file ``from_env()``
#: reads first, and a file holding the secret (Docker/Kubernetes secrets).
EXTRA_VARIABLES: Final = frozenset({CONFIG_VARIABLE, SECRET_FILE_VARIABLE})


def env_values(environ: Mapping[str, str]) -> dict[str, Raw]:
    """The settings given by the ``CLUSTERSESSION_*`` variables of ``environ``."""
    by_name = {info.env_name: path for path, info in settings().items()}
    out: dict[str, Raw] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in EXTRA_VARIABLES:
            continue
        path = by_name.get(name.upper())
        if path is None:
            raise _unknown_variable(name, by_name)
        out[path] = Raw(environ[name], f"from {name}")
    secret_file = environ.get(SECRET_FILE_VARIABLE)
    if secret_file:
        if "secret" in out:
            raise ConfigError(
                SECRET_FILE_VARIABLE,
                secret_file,
                f"is set together with {ENV_PREFIX}SECRET",
                "only one of the two",
            )
        out["secret"] = Raw(_read_secret_file(secret_file), f"from {SECRET_FILE_VARIABLE}")
    return out


def _unknown_variable(name: str, by_name: Mapping[str, str]) -> ConfigError:
    # The value is not shown: a mistyped variable may well hold the secret.
    close = difflib.get_close_matches(name.upper(), [*by_name, *EXTRA_VARIABLES], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(
        name,
        NO_VALUE,
        f"is not a known {ENV_PREFIX}* variable{hint}",
        f"{ENV_PREFIX}<SECTION>__<KEY> for a setting (see docs/configuration.md), "
        + " or ".join(sorted(EXTRA_VARIABLES)),
    )


def _read_secret_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            # Secret files usually end with a newline that is not part of the key.
            return fh.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            SECRET_FILE_VARIABLE, path, f"cannot be read ({exc.strerror})", "a readable file"
        ) from None
