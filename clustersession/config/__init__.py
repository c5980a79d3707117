"""Cluster configuration: Tomcat's ``<Cluster>`` settings as typed, validated dataclasses.

``ClusterConfig()`` is a valid one-node configuration. Loaders:
:meth:`ClusterConfig.load` (TOML), :meth:`ClusterConfig.from_env`
(``CLUSTERSESSION_*`` variables) and :meth:`ClusterConfig.from_tomcat_xml`
(Tomcat's ``server.xml`` and optionally the app's ``web.xml``). Every loader
applies the ``CLUSTERSESSION_*`` variables last, so they win. Any bad value or
unknown key raises :class:`ConfigError` (a ``ValueError``). See
``docs/configuration.md`` for every setting.
"""

from .cluster import default_jvm_route
from .errors import ConfigError
from .load import ClusterConfig
from .sections import (
    DeployerConfig,
    DispatchConfig,
    EncryptConfig,
    FailureDetectorConfig,
    HealthValveConfig,
    InterceptorsConfig,
    ManagerConfig,
    MembershipConfig,
    MetricsConfig,
    ReceiverConfig,
    ReplicationValveConfig,
    RouteBinderConfig,
    SenderConfig,
    ValvesConfig,
)

__all__ = [
    "ClusterConfig",
    "ConfigError",
    "DeployerConfig",
    "DispatchConfig",
    "EncryptConfig",
    "FailureDetectorConfig",
    "HealthValveConfig",
    "InterceptorsConfig",
    "ManagerConfig",
    "MembershipConfig",
    "MetricsConfig",
    "ReceiverConfig",
    "ReplicationValveConfig",
    "RouteBinderConfig",
    "SenderConfig",
    "ValvesConfig",
    "default_jvm_route",
]
