"""The fields and checks of the cluster configuration of one node.

:class:`BaseClusterConfig` is the validated frozen dataclass. The public
:class:`~clustersession.config.ClusterConfig` (in :mod:`.load`) adds the loading
classmethods to it; keeping them there means this module, which the settings
table and the readers are built on, never imports the readers or the loader.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Final, Self

from .checks import check_bool, check_str
from .errors import ConfigError
from .sections import (
    DeployerConfig,
    InterceptorsConfig,
    ManagerConfig,
    MembershipConfig,
    MetricsConfig,
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
    ("deployer", DeployerConfig),
    ("metrics", MetricsConfig),
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
class BaseClusterConfig:
    """The fields and validation of :class:`~clustersession.config.ClusterConfig`.

    Use ``ClusterConfig``, which documents the settings; it is this class plus
    the loaders. Constructing (or :meth:`replace`) checks every field and the
    rules between them, raising :class:`~.errors.ConfigError`.
    """

    distributable: bool = False
    jvm_route: str = field(default_factory=default_jvm_route)
    secret: str | None = field(default=None, repr=False)
    previous_secrets: tuple[str, ...] = field(default=(), repr=False)
    allow_insecure: bool = False
    channel_send_options: int = 8
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    sender: SenderConfig = field(default_factory=SenderConfig)
    interceptors: InterceptorsConfig = field(default_factory=InterceptorsConfig)
    manager: ManagerConfig = field(default_factory=ManagerConfig)
    valves: ValvesConfig = field(default_factory=ValvesConfig)
    deployer: DeployerConfig = field(default_factory=DeployerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

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
        self._check_previous_secrets()
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

    def _check_previous_secrets(self) -> None:
        previous = self.previous_secrets
        if not isinstance(previous, tuple) or not all(isinstance(s, str) for s in previous):
            raise ConfigError(
                "previous_secrets", "<hidden>", "is not a list of strings", "a list of strings"
            )
        if previous and self.secret is None:
            raise ConfigError(
                "previous_secrets",
                f"<{len(previous)} secrets>",
                "is set but secret is not",
                "set secret too (previous secrets only verify; the secret signs)",
            )
        for index, old in enumerate(previous):
            if len(old) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"previous_secrets[{index}]",
                    f"<{len(old)} characters>",
                    "is too short",
                    f"at least {MIN_SECRET_LENGTH} characters",
                )

    # -- helpers -----------------------------------------------------------------

    def replace(self, **changes: Any) -> Self:
        """A copy with some top-level fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self, *, include_secret: bool = False) -> dict[str, Any]:
        """Nested plain dict in the TOML layout (tuples as lists, ``None`` omitted).

        The secret and previous secrets are replaced by ``"<hidden>"`` unless
        ``include_secret`` is true.
        """
        data = _plain(self)
        if not include_secret:
            if self.secret is not None:
                data["secret"] = "<hidden>"
            data["previous_secrets"] = ["<hidden>"] * len(self.previous_secrets)
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
