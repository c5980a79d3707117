"""Loading: the public :class:`ClusterConfig`, whose classmethods read, merge and build.

Each loader asks the readers (:mod:`.toml_file`, :mod:`.env`, :mod:`.tomcat_xml`,
:mod:`.web_xml`) for ``{dotted path: Raw}`` mappings, lays the environment's on
top (the ``CLUSTERSESSION_*`` variables always win) and builds one validated
frozen config with :func:`.build.build`. This is the only module that imports the
readers. ``ClusterConfig`` is defined here, as :class:`.cluster.BaseClusterConfig`
plus the loaders, so that the dataclass module below the readers never has to
import upwards (no import cycle, not even a deferred one).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from .build import C, build
from .cluster import BaseClusterConfig
from .env import CONFIG_VARIABLE, env_values
from .safe_xml import is_inline
from .schema import ENV_PREFIX, Raw, env_name
from .tomcat_xml import server_xml_values
from .toml_file import read_toml, toml_values
from .web_xml import web_xml_values

log = logging.getLogger("clustersession.config")


class ClusterConfig(BaseClusterConfig):
    """The cluster configuration: Tomcat's ``<Cluster>`` plus web.xml's ``<distributable/>``.

    ``ClusterConfig()`` is a valid single-node configuration: ``distributable``
    is false, so sessions stay local and no network service is started.

    Top-level settings:

    * ``distributable`` - replicate sessions (web.xml ``<distributable/>``).
    * ``jvm_route`` - this node's route, appended to session ids after a dot
      (Tomcat's ``<Engine jvmRoute>``); ``[A-Za-z0-9_-]{1,64}``; default: the
      short host name.
    * ``secret`` - the cluster's shared key (at least 16 characters), used to
      authenticate channel traffic; hidden from ``repr``.
    * ``previous_secrets`` - secrets being rotated: they verify, ``secret`` signs
      (docs/security.md); hidden from ``repr``.
    * ``allow_insecure`` - let a distributable node run its channel without a
      secret (unauthenticated traffic; only on a network you trust).
    * ``channel_send_options`` - Tomcat's ``channelSendOptions`` bits:
      8 async (default), 2 ack, 6 ack+sync, 10, 14; see :mod:`.send_options`.

    Sections: ``membership``, ``receiver``, ``sender``, ``interceptors``,
    ``manager``, ``valves``. Loaders: :meth:`load` (TOML), :meth:`from_env`,
    :meth:`from_tomcat_xml`; each applies the ``CLUSTERSESSION_*`` variables last.
    The fields and their checks are those of :class:`.cluster.BaseClusterConfig`.
    """

    # No fields of its own; keeps the instances as slotted as the base's.
    __slots__ = ()

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
    ) -> ClusterConfig:
        """Read a TOML file, then apply the ``CLUSTERSESSION_*`` variables (env wins)."""
        env = _resolve_environ(environ)
        name = os.fspath(path)
        values = read_toml(name)
        _warn_ignored_config_variable(env, name)
        return _build_with_env(cls, values, env, origin=name)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, object],
        *,
        origin: str = "a mapping",
        environ: Mapping[str, str] | None = None,
    ) -> ClusterConfig:
        """Build from a nested mapping in the TOML file's shape, then apply the variables.

        For frameworks that keep settings in code (Django's ``settings.CLUSTERSESSION``);
        ``origin`` names the mapping in errors, as a file name would.
        """
        env = _resolve_environ(environ)
        return _build_with_env(cls, toml_values(data, origin), env, origin=origin)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClusterConfig:
        """Build from ``CLUSTERSESSION_*`` variables alone (plus ``CLUSTERSESSION_CONFIG``).

        ``CLUSTERSESSION_CONFIG``, if set, names a TOML file read first (as :meth:`load`).
        """
        env = _resolve_environ(environ)
        path = env.get(CONFIG_VARIABLE)
        if path:
            return cls.load(path, environ=env)
        return _build_with_env(cls, {}, env, origin="the environment")

    @classmethod
    def from_tomcat_xml(
        cls,
        server_xml: str | bytes | os.PathLike[str],
        web_xml: str | bytes | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> ClusterConfig:
        """Read a Tomcat ``server.xml`` (or a bare ``<Cluster>``) and optionally a web.xml.

        Each argument is a path, or the XML itself (bytes, or a str starting
        with ``<``). Unsupported elements and attributes are logged as warnings
        on the ``clustersession.config`` logger; the ``CLUSTERSESSION_*``
        variables are applied last.
        """
        env = _resolve_environ(environ)
        values, name = server_xml_values(server_xml, env)
        if web_xml is not None:
            web = web_xml_values(web_xml)
            variable = env_name("distributable")
            if variable in env:
                # The order for this one switch: web.xml, then the variable, then
                # the presence of <Cluster>. The app's own descriptor is the authority.
                log.warning(
                    "%s=%s is ignored: the web.xml decides (<distributable/> %s)",
                    variable,
                    env[variable],
                    "present" if web["distributable"].value else "absent",
                )
                env = {key: value for key, value in env.items() if key != variable}
            values.update(web)
        if not is_inline(server_xml):
            _warn_ignored_config_variable(env, name)
        return _build_with_env(cls, values, env, origin=name)


def _resolve_environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _build_with_env(
    cls: type[C], values: Mapping[str, Raw], environ: Mapping[str, str], *, origin: str
) -> C:
    """Apply the environment on top of ``values`` (env wins), build and validate."""
    env = env_values(environ)
    for path, raw in env.items():
        if path in values:
            log.debug("%s overrides %s from %s", raw.source, path, origin)
    config = build(cls, {**values, **env})
    if config.distributable and config.secret is None:
        log.warning(
            "distributable without a secret: the channel will refuse to start; set %sSECRET "
            "(or %sALLOW_INSECURE=true, only on a network you trust)",
            ENV_PREFIX,
            ENV_PREFIX,
        )
    return config


def _warn_ignored_config_variable(environ: Mapping[str, str], loaded: str) -> None:
    """Loaders given a file say so when ``CLUSTERSESSION_CONFIG`` names another one."""
    path = environ.get(CONFIG_VARIABLE)
    if path and os.path.abspath(path) != os.path.abspath(loaded):
        log.warning("%s=%s is ignored: loading %s", CONFIG_VARIABLE, path, loaded)
