"""``ClusterConfig``: the whole cluster configuration of one node."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .checks import check_bool, check_str
from .errors import ConfigError
from .sections import (
    InterceptorsConfig,
    ManagerConfig,
    MembershipConfig,
    ReceiverConfig,
    SenderConfig,
    ValvesConfig,
)
from .send_options import check_send_options

JVM_ROUTE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A short secret makes the HMAC key guessable offline from captured traffic.
MIN_SECRET_LENGTH: Final = 16

_SECTIONS: Final = (
    ("membership", MembershipConfig),
    ("receiver", ReceiverConfig),
    ("sender", SenderConfig),
    ("interceptors", InterceptorsConfig),
    ("manager", ManagerConfig),
    ("valves", ValvesConfig),
)


def default_jvm_route() -> str:
    """The short host name, made cookie-safe (``web-1.example.org`` → ``web-1``).

    Characters outside ``[A-Za-z0-9_-]`` become ``-``; an empty name becomes
    ``node``. In containers the host name is the container id, so set
    ``CLUSTERSESSION_JVM_ROUTE`` when routes must be stable across restarts.
    """
    short = socket.gethostname().split(".")[0]
    route = re.sub(r"[^A-Za-z0-9_-]", "-", short)[:64]
    return route or "node"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
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
    * ``allow_insecure`` - let a distributable node run its channel without a
      secret (unauthenticated traffic; only on a network you trust).
    * ``channel_send_options`` - Tomcat's ``channelSendOptions`` bits:
      8 async (default), 2 ack, 6 ack+sync, 10, 14; see :mod:`.send_options`.

    Sections: ``membership``, ``receiver``, ``sender``, ``interceptors``,
    ``manager``, ``valves``. Loaders: :meth:`load` (TOML), :meth:`from_env`,
    :meth:`from_tomcat_xml`; each applies the ``CLUSTERSESSION_*`` variables last.
    """

    distributable: bool = False
    jvm_route: str = field(default_factory=default_jvm_route)
    secret: str | None = field(default=None, repr=False)
    allow_insecure: bool = False
    channel_send_options: int = 8
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    sender: SenderConfig = field(default_factory=SenderConfig)
    interceptors: InterceptorsConfig = field(default_factory=InterceptorsConfig)
    manager: ManagerConfig = field(default_factory=ManagerConfig)
    valves: ValvesConfig = field(default_factory=ValvesConfig)

    def __post_init__(self) -> None:
        check_bool("distributable", self.distributable)
        check_bool("allow_insecure", self.allow_insecure)
        route = check_str("jvm_route", self.jvm_route, allowed="[A-Za-z0-9_-]{1,64}")
        if not JVM_ROUTE_PATTERN.match(route):
            raise ConfigError(
                "jvm_route",
                route,
                "is not a valid route (it is a cookie suffix after a dot)",
                "1 to 64 of A-Z a-z 0-9 _ -",
            )
        if self.secret is not None:
            if not isinstance(self.secret, str):
                raise ConfigError(
                    "secret", f"<{type(self.secret).__name__}>", "is not a string", "a string"
                )
            if len(self.secret) < MIN_SECRET_LENGTH:
                # Never echo the secret itself into logs.
                raise ConfigError(
                    "secret",
                    f"<{len(self.secret)} characters>",
                    "is too short",
                    f"at least {MIN_SECRET_LENGTH} characters, or unset",
                )
        check_send_options("channel_send_options", self.channel_send_options)
        for name, cls in _SECTIONS:
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(name, getattr(self, name), "is not a section", cls.__name__)
        if "encrypt" in self.interceptors.order and self.secret is None:
            raise ConfigError(
                "interceptors.order",
                self.interceptors.order,
                "enables 'encrypt' but no secret is set",
                "set secret (CLUSTERSESSION_SECRET) or remove 'encrypt'",
            )

    # -- loaders -----------------------------------------------------------------

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
    ) -> ClusterConfig:
        """Read a TOML file, then apply the ``CLUSTERSESSION_*`` variables (env wins)."""
        from .toml_file import load_toml

        return load_toml(path, environ=environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClusterConfig:
        """Build from ``CLUSTERSESSION_*`` variables alone (plus ``CLUSTERSESSION_CONFIG``)."""
        from .env import load_env

        return load_env(environ)

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
        from .tomcat_xml import load_tomcat_xml

        return load_tomcat_xml(server_xml, web_xml, environ=environ)

    # -- helpers -----------------------------------------------------------------

    def replace(self, **changes: Any) -> ClusterConfig:
        """A copy with some top-level fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self, *, include_secret: bool = False) -> dict[str, Any]:
        """Nested plain dict in the TOML layout (tuples as lists, ``None`` omitted).

        The secret is replaced by ``"<hidden>"`` unless ``include_secret`` is true.
        """
        data = _plain(self)
        if self.secret is not None and not include_secret:
            data["secret"] = "<hidden>"
        return data


def _plain(obj: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = _plain(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        elif value is not None:
            out[f.name] = value
    return out
