"""``CLUSTERSESSION_*`` environment variables, and the final build step of every loader.

Scheme: ``CLUSTERSESSION_`` + the dotted setting path in upper case with ``.``
written as ``__``: ``jvm_route`` → ``CLUSTERSESSION_JVM_ROUTE``,
``membership.port`` → ``CLUSTERSESSION_MEMBERSHIP__PORT``,
``interceptors.dispatch.always_send`` → ``CLUSTERSESSION_INTERCEPTORS__DISPATCH__ALWAYS_SEND``.
Lists are comma-separated. Any other ``CLUSTERSESSION_*`` variable is an error,
except the ones in :data:`EXTRA_VARIABLES`.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from typing import Final

from .cluster import ClusterConfig
from .errors import NO_VALUE, ConfigError
from .schema import ENV_PREFIX, Raw, build, settings

log = logging.getLogger("clustersession.config")

CONFIG_VARIABLE: Final = ENV_PREFIX + "CONFIG"
SECRET_FILE_VARIABLE: Final = ENV_PREFIX + "SECRET_FILE"

#: Variables with the prefix that are not settings: the TOML file ``from_env()``
#: reads first, and a file holding the secret (Docker/Kubernetes secrets).
EXTRA_VARIABLES: Final = frozenset({CONFIG_VARIABLE, SECRET_FILE_VARIABLE})


def resolve_environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


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


def build_with_env(
    values: Mapping[str, Raw], environ: Mapping[str, str], *, origin: str
) -> ClusterConfig:
    """Apply the environment on top of ``values`` (env wins), build and validate."""
    env = env_values(environ)
    for path, raw in env.items():
        if path in values:
            log.debug("%s overrides %s from %s", raw.source, path, origin)
    config = build({**values, **env})
    if config.distributable and config.secret is None:
        log.warning(
            "distributable without a secret: the channel will refuse to start; set %sSECRET "
            "(or %sALLOW_INSECURE=true, only on a network you trust)",
            ENV_PREFIX,
            ENV_PREFIX,
        )
    return config


def load_env(environ: Mapping[str, str] | None = None) -> ClusterConfig:
    """``ClusterConfig.from_env``: ``CLUSTERSESSION_CONFIG`` (a TOML file) if set, then env."""
    env = resolve_environ(environ)
    path = env.get(CONFIG_VARIABLE)
    if path:
        from .toml_file import load_toml

        return load_toml(path, environ=env)
    return build_with_env({}, env, origin="the environment")


def warn_ignored_config_variable(environ: Mapping[str, str], loaded: str) -> None:
    """Loaders given a file say so when ``CLUSTERSESSION_CONFIG`` names another one."""
    path = environ.get(CONFIG_VARIABLE)
    if path and os.path.abspath(path) != os.path.abspath(loaded):
        log.warning("%s=%s is ignored: loading %s", CONFIG_VARIABLE, path, loaded)
