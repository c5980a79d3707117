"""One frozen dataclass per Tomcat cluster component.

Field names are Tomcat's attribute names in snake_case, with Tomcat's defaults
and Tomcat's units (milliseconds for most durations; seconds where Tomcat uses
seconds, e.g. ``state_transfer_timeout``). Settings that Tomcat does not have
are named by us and use seconds (floats) for durations and bytes for sizes.
The units are listed in :data:`UNITS` and in ``docs/configuration.md``.

Every section validates itself in ``__post_init__``, so a bad value fails the
same way whether it came from a file, the environment or Python code.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Final, Literal

from .checks import (
    check_bool,
    check_choice,
    check_float,
    check_host,
    check_int,
    check_ip,
    check_port,
    check_regex,
    check_str,
    check_url_path,
    split_host_port,
)
from .errors import ConfigError
from .send_options import check_send_options

MiB: Final = 1024 * 1024

MembershipKind = Literal["multicast", "static", "dns"]
ManagerKind = Literal["delta", "backup"]
MANAGER_KINDS: Final = ("delta", "backup")
MAX_BACKUPS: Final = 3
MEMBERSHIP_KINDS: Final = ("multicast", "static", "dns")

# Interceptor names in `interceptors.order`; each has a settings section of the same name.
INTERCEPTOR_NAMES: Final = ("failure_detector", "dispatch", "encrypt")


def _set(obj: object, name: str, value: object) -> None:
    # Frozen dataclasses normalise in __post_init__ (list → tuple, int → float).
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipConfig:
    """How nodes find each other (Tomcat ``<Membership>``, McastService).

    ``kind`` selects the provider: ``"multicast"`` (Tomcat's McastService,
    heartbeats to ``address:port``), ``"static"`` (a fixed ``static_members``
    list, like StaticMembershipService) or ``"dns"`` (every address ``dns_name``
    resolves to, re-resolved every ``dns_refresh_interval`` seconds, like
    Tomcat's DNSMembershipProvider; peers listen on our ``receiver.port``).
    ``frequency`` and ``drop_time`` apply to every kind: heartbeat/ping period
    and silence after which a member is dropped.
    """

    kind: MembershipKind = "multicast"
    address: str = "228.0.0.4"
    port: int = 45564
    frequency: int = 500
    drop_time: int = 3000
    bind: str | None = None
    ttl: int | None = None
    domain: str = ""
    local_loopback_disabled: bool = False
    static_members: tuple[str, ...] = ()
    dns_name: str | None = None
    dns_refresh_interval: float = 5.0

    def __post_init__(self) -> None:
        p = "membership."
        check_choice(p + "kind", self.kind, MEMBERSHIP_KINDS)
        check_str(p + "address", self.address, allowed="a multicast IP address")
        check_port(p + "port", self.port)
        check_int(p + "frequency", self.frequency, minimum=1)
        check_int(p + "drop_time", self.drop_time, minimum=1)
        if self.drop_time <= self.frequency:
            raise ConfigError(
                p + "drop_time",
                self.drop_time,
                "is not greater than membership.frequency "
                f"({self.frequency}); every member would flap",
                f"an integer > {self.frequency} (ms)",
            )
        if self.bind is not None:
            check_ip(p + "bind", self.bind)
        if self.ttl is not None:
            check_int(p + "ttl", self.ttl, minimum=1, maximum=255)
        check_str(p + "domain", self.domain)
        if len(self.domain.encode()) > 255:
            raise ConfigError(p + "domain", self.domain, "is too long", "at most 255 UTF-8 bytes")
        check_bool(p + "local_loopback_disabled", self.local_loopback_disabled)
        if isinstance(self.static_members, list):
            _set(self, "static_members", tuple(self.static_members))
        if not isinstance(self.static_members, tuple):
            raise ConfigError(
                p + "static_members", self.static_members, "is not a list", "a list of host:port"
            )
        for member in self.static_members:
            if not isinstance(member, str) or split_host_port(member) is None:
                raise ConfigError(
                    p + "static_members",
                    member,
                    "is not a host:port member",
                    "host:port with port 1..65535 (IPv6 as [addr]:port)",
                )
        if self.dns_name is not None:
            check_host(p + "dns_name", self.dns_name, allowed="a DNS name")
        _set(
            self,
            "dns_refresh_interval",
            check_float(p + "dns_refresh_interval", self.dns_refresh_interval),
        )
        self._check_kind()

    def _check_kind(self) -> None:
        p = "membership."
        if self.kind == "multicast":
            try:
                multicast = ipaddress.ip_address(self.address).is_multicast
            except ValueError:
                multicast = False
            if not multicast:
                raise ConfigError(
                    p + "address",
                    self.address,
                    "is not a multicast address",
                    "an IPv4 224.0.0.0/4 or IPv6 ff00::/8 address",
                )
        elif self.kind == "static" and not self.static_members:
            raise ConfigError(
                p + "static_members",
                self.static_members,
                "is empty but membership.kind is 'static'",
                "at least one host:port",
            )
        elif self.kind == "dns" and self.dns_name is None:
            raise ConfigError(
                p + "dns_name",
                None,
                "is required when membership.kind is 'dns'",
                "a DNS name, e.g. a Kubernetes headless Service",
            )
        if self.kind != "static" and self.static_members:
            raise ConfigError(
                p + "static_members",
                self.static_members,
                f"is only used when membership.kind is 'static' (kind is {self.kind!r})",
                "an empty list, or membership.kind = 'static'",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverConfig:
    """The TCP listener peers send to (Tomcat ``<Receiver>``, NioReceiver).

    ``address="auto"`` binds and announces this host's address; the first free
    port of ``port .. port + auto_bind - 1`` is used and announced.
    ``max_message_size`` is ours: a frame announcing more bytes is refused
    before it is buffered (Tomcat has no limit).
    """

    address: str = "auto"
    port: int = 4000
    auto_bind: int = 100
    max_message_size: int = 16 * MiB

    def __post_init__(self) -> None:
        p = "receiver."
        if self.address != "auto":
            check_host(p + "address", self.address, allowed="'auto', an IP address or host name")
        check_port(p + "port", self.port)
        check_int(p + "auto_bind", self.auto_bind, minimum=1, maximum=65535)
        if self.port + self.auto_bind - 1 > 65535:
            raise ConfigError(
                p + "auto_bind",
                self.auto_bind,
                f"runs past port 65535 from receiver.port {self.port}",
                f"an integer 1..{65536 - self.port}",
            )
        check_int(p + "max_message_size", self.max_message_size, minimum=1024)


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderConfig:
    """Outgoing connections (Tomcat ``<Sender>``/``<Transport>``, PooledParallelSender)."""

    timeout: int = 3000
    max_retry_attempts: int = 1
    pool_size: int = 25
    max_wait: int = 3000
    keep_alive_count: int = -1
    keep_alive_time: int = -1
    throw_on_failed_ack: bool = True

    def __post_init__(self) -> None:
        p = "sender."
        check_int(p + "timeout", self.timeout, minimum=1)
        check_int(p + "max_retry_attempts", self.max_retry_attempts, minimum=0)
        check_int(p + "pool_size", self.pool_size, minimum=1)
        check_int(p + "max_wait", self.max_wait, minimum=1)
        check_int(p + "keep_alive_count", self.keep_alive_count, minimum=1, extra=(-1,))
        check_int(p + "keep_alive_time", self.keep_alive_time, minimum=1, extra=(-1,))
        check_bool(p + "throw_on_failed_ack", self.throw_on_failed_ack)


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureDetectorConfig:
    """Settings of the ``failure_detector`` interceptor (Tomcat TcpFailureDetector).

    ``remove_suspects_timeout`` is in seconds, as in Tomcat; negative = never.
    """

    connect_timeout: int = 1000
    perform_send_test: bool = True
    perform_read_test: bool = False
    read_test_timeout: int = 5000
    remove_suspects_timeout: int = 300

    def __post_init__(self) -> None:
        p = "interceptors.failure_detector."
        check_int(p + "connect_timeout", self.connect_timeout, minimum=1)
        check_bool(p + "perform_send_test", self.perform_send_test)
        check_bool(p + "perform_read_test", self.perform_read_test)
        check_int(p + "read_test_timeout", self.read_test_timeout, minimum=1)
        check_int(p + "remove_suspects_timeout", self.remove_suspects_timeout)


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchConfig:
    """Settings of the ``dispatch`` interceptor (Tomcat MessageDispatchInterceptor).

    Queues messages sent with the async bit (8). ``always_send``: when the queue
    is full, send on the caller's task instead of failing.
    """

    max_queue_size: int = 64 * MiB
    always_send: bool = True

    def __post_init__(self) -> None:
        p = "interceptors.dispatch."
        check_int(p + "max_queue_size", self.max_queue_size, minimum=1)
        check_bool(p + "always_send", self.always_send)


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptConfig:
    """Settings of the ``encrypt`` interceptor (Tomcat EncryptInterceptor, AES-GCM).

    The key is derived from the cluster ``secret``, which is therefore required
    when ``"encrypt"`` is in ``interceptors.order``.
    """

    replay_window_time: int = 10000
    replay_window_message_count: int = 8192

    def __post_init__(self) -> None:
        p = "interceptors.encrypt."
        check_int(p + "replay_window_time", self.replay_window_time, minimum=1)
        check_int(p + "replay_window_message_count", self.replay_window_message_count, minimum=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class InterceptorsConfig:
    """The channel's interceptor stack, in send order (Tomcat ``<Interceptor>`` elements).

    ``order`` lists the enabled interceptors by name, first = top of the stack
    (sees outgoing messages first, incoming ones last). The settings sections
    apply only to interceptors listed in ``order``.
    """

    order: tuple[str, ...] = ("failure_detector", "dispatch")
    failure_detector: FailureDetectorConfig = field(default_factory=FailureDetectorConfig)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    encrypt: EncryptConfig = field(default_factory=EncryptConfig)

    def __post_init__(self) -> None:
        key = "interceptors.order"
        allowed = "a list of distinct names from " + ", ".join(INTERCEPTOR_NAMES)
        if isinstance(self.order, list):
            _set(self, "order", tuple(self.order))
        if not isinstance(self.order, tuple):
            raise ConfigError(key, self.order, "is not a list", allowed)
        for name in self.order:
            if name not in INTERCEPTOR_NAMES:
                raise ConfigError(key, name, "is not a known interceptor", allowed)
        if len(set(self.order)) != len(self.order):
            raise ConfigError(key, self.order, "lists an interceptor twice", allowed)
        # As in Tomcat: the detector's probes bypass the layers above it on send
        # but not on receive, so encryption must sit above it.
        if (
            "encrypt" in self.order
            and "failure_detector" in self.order
            and self.order.index("encrypt") > self.order.index("failure_detector")
        ):
            raise ConfigError(
                key, self.order, "puts 'encrypt' below 'failure_detector'", "'encrypt' first"
            )
        for name, cls in (
            ("failure_detector", FailureDetectorConfig),
            ("dispatch", DispatchConfig),
            ("encrypt", EncryptConfig),
        ):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(
                    "interceptors." + name, getattr(self, name), "is not a section", cls.__name__
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerConfig:
    """Session manager (Tomcat ``<Manager>``).

    ``kind`` picks it: ``"delta"`` (DeltaManager: every session on every node) or
    ``"backup"`` (BackupManager: a primary and ``backups`` copies per session, a
    small proxy entry elsewhere). ``map_send_options``, ``rpc_timeout`` (ms),
    ``access_timeout`` (ms) and ``terminate_on_start_failure`` are BackupManager's,
    with Tomcat's names, units and defaults; ``backups`` (1..3) is ours.
    ``max_inactive_interval`` (seconds, Tomcat's session-timeout x 60; <= 0 never
    expires) and ``expiry_sweep_interval`` (seconds; Tomcat's
    processExpiresFrequency x backgroundProcessorDelay) are ours, as are
    ``rolling`` (the cookie is sent again on every request of a live session),
    ``lifetime`` (seconds from creation after which a session is gone however
    active; <= 0 no limit), ``principal_attribute`` and
    ``max_sessions_per_principal`` (the admin API's "sessions of a user"), and
    ``snapshot_path``/``snapshot_interval`` (seconds; sessions kept across a
    whole-farm restart); the other names and units are Tomcat's
    (``state_transfer_timeout`` in seconds: -1 wait forever, 0 do not wait).
    """

    kind: ManagerKind = "delta"
    backups: int = 1
    map_send_options: int = 6
    rpc_timeout: int = 15000
    access_timeout: int = 5000
    terminate_on_start_failure: bool = False
    max_inactive_interval: int = 1800
    expiry_sweep_interval: float = 60.0
    expire_sessions_on_shutdown: bool = False
    notify_listeners_on_replication: bool = True
    notify_session_listeners_on_replication: bool = True
    state_transfer_timeout: int = 60
    send_all_sessions: bool = True
    send_all_sessions_size: int = 1000
    send_all_sessions_wait_time: int = 2000
    state_timestamp_drop: bool = True
    record_all_actions: bool = False
    max_active_sessions: int = -1
    session_attribute_name_filter: str | None = None
    rolling: bool = False
    lifetime: int = 0
    principal_attribute: str | None = None
    max_sessions_per_principal: int = -1
    snapshot_path: str | None = None
    snapshot_interval: float = 60.0

    def __post_init__(self) -> None:
        p = "manager."
        check_choice(p + "kind", self.kind, MANAGER_KINDS)
        check_int(p + "backups", self.backups, minimum=1, maximum=MAX_BACKUPS)
        check_send_options(p + "map_send_options", self.map_send_options)
        check_int(p + "rpc_timeout", self.rpc_timeout, minimum=1)
        check_int(p + "access_timeout", self.access_timeout, minimum=1)
        check_bool(p + "terminate_on_start_failure", self.terminate_on_start_failure)
        check_bool(p + "rolling", self.rolling)
        check_int(p + "lifetime", self.lifetime)
        if self.principal_attribute is not None:
            name = check_str(p + "principal_attribute", self.principal_attribute)
            if not name:
                raise ConfigError(p + "principal_attribute", name, "is empty", "an attribute name")
        check_int(
            p + "max_sessions_per_principal",
            self.max_sessions_per_principal,
            minimum=1,
            extra=(-1,),
            allowed="-1 (no limit) or an integer >= 1",
        )
        if self.max_sessions_per_principal > 0 and self.principal_attribute is None:
            raise ConfigError(
                p + "max_sessions_per_principal",
                self.max_sessions_per_principal,
                "needs manager.principal_attribute (which attribute names the user)",
                "-1, or set manager.principal_attribute",
            )
        if self.snapshot_path is not None:
            path = check_str(p + "snapshot_path", self.snapshot_path)
            if not path:
                raise ConfigError(p + "snapshot_path", path, "is empty", "a file path, or unset")
        _set(
            self,
            "snapshot_interval",
            check_float(p + "snapshot_interval", self.snapshot_interval),
        )
        check_int(p + "max_inactive_interval", self.max_inactive_interval)
        _set(
            self,
            "expiry_sweep_interval",
            check_float(p + "expiry_sweep_interval", self.expiry_sweep_interval),
        )
        check_bool(p + "expire_sessions_on_shutdown", self.expire_sessions_on_shutdown)
        check_bool(p + "notify_listeners_on_replication", self.notify_listeners_on_replication)
        check_bool(
            p + "notify_session_listeners_on_replication",
            self.notify_session_listeners_on_replication,
        )
        check_int(
            p + "state_transfer_timeout",
            self.state_transfer_timeout,
            minimum=0,
            extra=(-1,),
            allowed="-1 (wait forever), 0 (do not wait) or seconds > 0",
        )
        check_bool(p + "send_all_sessions", self.send_all_sessions)
        check_int(p + "send_all_sessions_size", self.send_all_sessions_size, minimum=1)
        check_int(p + "send_all_sessions_wait_time", self.send_all_sessions_wait_time, minimum=0)
        check_bool(p + "state_timestamp_drop", self.state_timestamp_drop)
        check_bool(p + "record_all_actions", self.record_all_actions)
        check_int(
            p + "max_active_sessions",
            self.max_active_sessions,
            minimum=1,
            extra=(-1,),
            allowed="-1 (no limit) or an integer >= 1",
        )
        if self.session_attribute_name_filter is not None:
            check_regex(p + "session_attribute_name_filter", self.session_attribute_name_filter)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicationValveConfig:
    """End-of-request replication (Tomcat ReplicationValve).

    ``filter``: regex matched against the whole decoded request path; a match
    means the request did not change the session and nothing is sent. ``""``
    filters nothing.
    """

    filter: str = ""
    primary_indicator: bool = False
    primary_indicator_name: str = "org.apache.catalina.ha.tcp.isPrimarySession"

    def __post_init__(self) -> None:
        p = "valves.replication."
        check_regex(p + "filter", self.filter)
        check_bool(p + "primary_indicator", self.primary_indicator)
        name = check_str(p + "primary_indicator_name", self.primary_indicator_name)
        if not name:
            raise ConfigError(p + "primary_indicator_name", name, "is empty", "a non-empty name")


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteBinderConfig:
    """Failover re-routing of session ids (Tomcat JvmRouteBinderValve).

    When a request carries a session id of another route, the id is changed to
    this node's route. The old id is exposed under ``session_id_attribute``
    (``""`` = not exposed).
    """

    enabled: bool = True
    session_id_attribute: str = "org.apache.catalina.ha.session.JvmRouteOriginalSessionID"

    def __post_init__(self) -> None:
        p = "valves.route_binder."
        check_bool(p + "enabled", self.enabled)
        check_str(p + "session_id_attribute", self.session_id_attribute)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusValveConfig:
    """The cluster status page and JSON served by the middleware (ours; Tomcat has JMX).

    ``path`` (e.g. ``"/cluster-status"``; ``""`` = off) serves an HTML page there
    and JSON at ``path + ".json"``. With ``token`` set, a request must carry it
    as ``Authorization: Bearer <token>`` (``?token=<token>`` is also read, for a
    browser, but lands in access logs); without one, only clients on the
    loopback address are answered.
    """

    path: str = ""
    token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        p = "valves.status."
        check_url_path(p + "path", self.path)
        check_str(p + "token", self.token)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthValveConfig:
    """Liveness and readiness answers served by the middleware, before the app (ours).

    ``liveness_path`` answers 200 while the node's event loop answers requests;
    ``readiness_path`` answers 200 once the channel has started and the state
    transfer has finished, and 503 before that and again once the node is
    stopping. ``""`` = off. Both answer every client (probes carry no token).
    """

    liveness_path: str = ""
    readiness_path: str = ""

    def __post_init__(self) -> None:
        p = "valves.health."
        check_url_path(p + "liveness_path", self.liveness_path)
        check_url_path(p + "readiness_path", self.readiness_path)


@dataclass(frozen=True, slots=True, kw_only=True)
class ValvesConfig:
    """The request-pipeline steps the cluster adds (Tomcat ``<Valve>`` elements)."""

    replication: ReplicationValveConfig = field(default_factory=ReplicationValveConfig)
    route_binder: RouteBinderConfig = field(default_factory=RouteBinderConfig)
    status: StatusValveConfig = field(default_factory=StatusValveConfig)
    health: HealthValveConfig = field(default_factory=HealthValveConfig)

    def __post_init__(self) -> None:
        for name, cls in (
            ("replication", ReplicationValveConfig),
            ("route_binder", RouteBinderConfig),
            ("status", StatusValveConfig),
            ("health", HealthValveConfig),
        ):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(
                    "valves." + name, getattr(self, name), "is not a section", cls.__name__
                )


GiB: Final = 1024 * MiB
TRANSFER_RATE: Final = 8 * MiB
"""Bytes/s one node fetches an artifact at by default (see bench/README.md)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    """Prometheus metrics (ours; Tomcat has JMX): needs the ``clustersession[metrics]`` extra.

    ``path`` (e.g. ``"/metrics"``; ``""`` = off) is served by the middleware, in
    front of the app; ``port`` (``0`` = off) serves them on a port of their own,
    bound to ``host``, from the process that serves the sessions.
    """

    path: str = ""
    port: int = 0
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        p = "metrics."
        check_url_path(p + "path", self.path)
        check_int(p + "port", self.port, minimum=0, maximum=65535)
        check_host(p + "host", self.host)

    @property
    def enabled(self) -> bool:
        """Whether metrics are served at all (a path, a port, or both)."""
        return bool(self.path) or self.port > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployerConfig:
    """The farm deployer (Tomcat ``<Deployer>``, FarmWarDeployer): files pushed to every node.

    The deployer runs when ``deploy_dir`` is set: received artifacts are written
    to ``temp_dir`` (default: the system's temporary directory), checked, and
    moved into ``deploy_dir``. With ``watch_enabled``, files in ``watch_dir``
    are deployed to (and, removed, undeployed from) every member; the directory
    is checked every ``process_deploy_frequency`` seconds (Tomcat counts
    background-process runs, 10 s apart by default; ours run every second).
    ``on_deploy`` / ``on_undeploy`` (ours) are commands run once per host after
    a change, with the artifact's path as last argument; ``max_artifact_size``
    (ours) refuses larger artifacts before a byte is written; ``transfer_rate``
    (ours, bytes/s, 0: unlimited) paces each node's fetch of an artifact, so
    that a deploy leaves CPU to session replication.
    """

    temp_dir: str | None = None
    deploy_dir: str | None = None
    watch_dir: str | None = None
    watch_enabled: bool = False
    process_deploy_frequency: int = 2
    on_deploy: str | None = None
    on_undeploy: str | None = None
    max_artifact_size: int = GiB
    transfer_rate: int = TRANSFER_RATE

    def __post_init__(self) -> None:
        p = "deployer."
        for name in ("temp_dir", "deploy_dir", "watch_dir", "on_deploy", "on_undeploy"):
            value = getattr(self, name)
            if value is not None and not check_str(p + name, value):
                raise ConfigError(p + name, value, "is empty", "a non-empty string, or unset")
        check_bool(p + "watch_enabled", self.watch_enabled)
        check_int(p + "process_deploy_frequency", self.process_deploy_frequency, minimum=1)
        check_int(p + "max_artifact_size", self.max_artifact_size, minimum=1)
        check_int(p + "transfer_rate", self.transfer_rate, minimum=0)
        if self.watch_enabled and (self.watch_dir is None or self.deploy_dir is None):
            raise ConfigError(
                p + "watch_enabled",
                self.watch_enabled,
                "is true but watch_dir or deploy_dir is not set",
                "set deployer.watch_dir and deployer.deploy_dir, or watch_enabled = false",
            )

    @property
    def enabled(self) -> bool:
        """Whether this node runs a deployer (``deploy_dir`` is set)."""
        return self.deploy_dir is not None


#: Unit of every setting that has one, by dotted path: "ms" and "s" for durations,
#: "bytes" for sizes (loaders also accept a KiB/MiB/GiB suffix for those).
UNITS: Final[dict[str, str]] = {
    "membership.frequency": "ms",
    "membership.drop_time": "ms",
    "membership.dns_refresh_interval": "s",
    "receiver.max_message_size": "bytes",
    "sender.timeout": "ms",
    "sender.max_wait": "ms",
    "sender.keep_alive_time": "ms",
    "interceptors.failure_detector.connect_timeout": "ms",
    "interceptors.failure_detector.read_test_timeout": "ms",
    "interceptors.failure_detector.remove_suspects_timeout": "s",
    "interceptors.dispatch.max_queue_size": "bytes",
    "interceptors.encrypt.replay_window_time": "ms",
    "manager.rpc_timeout": "ms",
    "manager.access_timeout": "ms",
    "manager.max_inactive_interval": "s",
    "manager.expiry_sweep_interval": "s",
    "manager.state_transfer_timeout": "s",
    "manager.send_all_sessions_wait_time": "ms",
    "manager.lifetime": "s",
    "manager.snapshot_interval": "s",
    "deployer.process_deploy_frequency": "s",
    "deployer.max_artifact_size": "bytes",
}
