"""Read Tomcat's ``server.xml`` (or a bare ``<Cluster>``) into ``{dotted path: Raw}``.

Every attribute of the cluster components is either mapped to a setting or
named in a WARNING on the ``clustersession.config`` logger with the reason it
is ignored; loading then continues. Elements outside ``<Cluster>`` (Server,
Service, Connector, ...) are not cluster configuration and are skipped silently,
except ``<Engine jvmRoute backgroundProcessorDelay>``.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping
from typing import Final

from .errors import ConfigError
from .safe_xml import local_name, read_xml
from .schema import Raw

log = logging.getLogger("clustersession.config")

HA: Final = "org.apache.catalina.ha."
TRIBES: Final = "org.apache.catalina.tribes."
INTERCEPTORS: Final = TRIBES + "group.interceptors."

NO_THREADS: Final = "no meaning under asyncio (one event loop, no selector or worker threads)"
SOCKETS: Final = "socket and buffer tuning is left to the OS"
NO_JMX: Final = "no JMX or statistics here"

CLUSTER_ATTRS: Final = {"channelSendOptions": "channel_send_options"}
CLUSTER_REASONS: Final = {
    "channelStartOptions": "services start according to membership.kind",
    "heartbeatBackgroundEnabled": NO_THREADS,
    "notifyLifecycleListenerOnFailure": "no lifecycle listeners here",
    "clusterName": "only names Tomcat's threads and JMX beans",
}
MANAGER_ATTRS: Final = {
    "expireSessionsOnShutdown": "manager.expire_sessions_on_shutdown",
    "notifyListenersOnReplication": "manager.notify_listeners_on_replication",
    "notifySessionListenersOnReplication": "manager.notify_session_listeners_on_replication",
    "stateTransferTimeout": "manager.state_transfer_timeout",
    "sendAllSessions": "manager.send_all_sessions",
    "sendAllSessionsSize": "manager.send_all_sessions_size",
    "sendAllSessionsWaitTime": "manager.send_all_sessions_wait_time",
    "stateTimestampDrop": "manager.state_timestamp_drop",
    "recordAllActions": "manager.record_all_actions",
    "maxActiveSessions": "manager.max_active_sessions",
    "sessionAttributeNameFilter": "manager.session_attribute_name_filter",
    # Tomcat 7 kept the timeout (seconds) on the Manager; later versions use web.xml.
    "maxInactiveInterval": "manager.max_inactive_interval",
}
# BackupManager's own attributes (only on a <Manager className="...BackupManager">).
BACKUP_MANAGER_ATTRS: Final = {
    "mapSendOptions": "manager.map_send_options",
    "rpcTimeout": "manager.rpc_timeout",
    "accessTimeout": "manager.access_timeout",
    "terminateOnStartFailure": "manager.terminate_on_start_failure",
}
MANAGER_REASONS: Final = {
    "name": "the manager is identified by the application",
    "notifyContainerListenersOnReplication": "Starlette has no container listeners",
    "enableStatistics": NO_JMX,
    "sessionAttributeValueClassNameFilter": (
        "session values are limited to the msgpack codec's types instead"
    ),
    "warnOnSessionAttributeFilterFailure": "filtered attributes are always logged at DEBUG",
    "secureRandomClass": "session ids come from the secrets module",
    "secureRandomAlgorithm": "session ids come from the secrets module",
    "secureRandomProvider": "session ids come from the secrets module",
    "pathname": "cluster managers never persist sessions",
}
MCAST_ATTRS: Final = {
    "address": "membership.address",
    "port": "membership.port",
    "frequency": "membership.frequency",
    "dropTime": "membership.drop_time",
    "bind": "membership.bind",
    "ttl": "membership.ttl",
    "domain": "membership.domain",
    "localLoopbackDisabled": "membership.local_loopback_disabled",
}
MCAST_REASONS: Final = {
    "soTimeout": NO_THREADS,
    "recoveryEnabled": "not supported",
    "recoveryCounter": "not supported",
    "recoverySleepTime": "not supported",
    "payload": "application payloads in heartbeats are not supported",
}
PROVIDER_REASONS: Final = {
    "connectTimeout": "not supported; membership.frequency and drop_time apply",
    "rpcTimeout": "not supported; membership.frequency and drop_time apply",
    "expirationTime": "not supported; membership.drop_time applies",
    "readTimeout": "not supported",
    "useThread": NO_THREADS,
    "pingInterval": "not supported; membership.frequency applies",
}
RECEIVER_ATTRS: Final = {
    "address": "receiver.address",
    "port": "receiver.port",
    "autoBind": "receiver.auto_bind",
}
RECEIVER_REASONS: Final = {
    **dict.fromkeys(
        ("selectorTimeout", "maxThreads", "minThreads", "maxTasks", "minTasks", "maxIdleTime"),
        NO_THREADS,
    ),
    **dict.fromkeys(
        (
            "rxBufSize",
            "txBufSize",
            "udpRxBufSize",
            "udpTxBufSize",
            "direct",
            "tcpNoDelay",
            "soKeepAlive",
            "ooBInline",
            "soReuseAddress",
            "soLingerOn",
            "soLingerTime",
            "soTrafficClass",
            "useBufferPool",
        ),
        SOCKETS,
    ),
    "timeout": "no socket timeouts under asyncio",
    "securePort": "only plain TCP is supported (use a VPN/IPsec or the encrypt interceptor)",
    "udpPort": "only TCP transport is supported",
}
SENDER_ATTRS: Final = {
    "timeout": "sender.timeout",
    "maxRetryAttempts": "sender.max_retry_attempts",
    "poolSize": "sender.pool_size",
    "maxWait": "sender.max_wait",
    "keepAliveCount": "sender.keep_alive_count",
    "keepAliveTime": "sender.keep_alive_time",
    "throwOnFailedAck": "sender.throw_on_failed_ack",
}
SENDER_REASONS: Final = {
    **dict.fromkeys(
        (
            "rxBufSize",
            "txBufSize",
            "udpRxBufSize",
            "udpTxBufSize",
            "directBuffer",
            "tcpNoDelay",
            "soKeepAlive",
            "ooBInline",
            "soReuseAddress",
            "soLingerOn",
            "soLingerTime",
            "soTrafficClass",
        ),
        SOCKETS,
    ),
    "udpBased": "only TCP transport is supported",
}
CHANNEL_REASONS: Final = {
    "heartbeat": NO_THREADS,
    "heartbeatSleeptime": "not supported; membership.frequency drives the checks",
    "optionCheck": "interceptors are chosen by name, options cannot overlap",
    "jmxEnabled": NO_JMX,
    "jmxDomain": NO_JMX,
    "jmxPrefix": NO_JMX,
}
OPTION_FLAG: Final = {"optionFlag": "interceptors act on every message"}
FAILURE_DETECTOR_ATTRS: Final = {
    "connectTimeout": "interceptors.failure_detector.connect_timeout",
    "performSendTest": "interceptors.failure_detector.perform_send_test",
    "performReadTest": "interceptors.failure_detector.perform_read_test",
    "readTestTimeout": "interceptors.failure_detector.read_test_timeout",
    "removeSuspectsTimeout": "interceptors.failure_detector.remove_suspects_timeout",
}
DISPATCH_ATTRS: Final = {
    "maxQueueSize": "interceptors.dispatch.max_queue_size",
    "alwaysSend": "interceptors.dispatch.always_send",
}
DISPATCH_REASONS: Final = {
    **OPTION_FLAG,
    **dict.fromkeys(("maxThreads", "maxSpareThreads", "keepAliveTime"), NO_THREADS),
    "useDeepClone": "queued messages are immutable bytes",
}
ENCRYPT_ATTRS: Final = {
    "encryptionKey": "secret",
    "replayWindowTime": "interceptors.encrypt.replay_window_time",
    "replayWindowMessageCount": "interceptors.encrypt.replay_window_message_count",
}
ENCRYPT_REASONS: Final = {
    **OPTION_FLAG,
    "encryptionAlgorithm": "AES/GCM/NoPadding is always used",
    "providerName": "the cryptography package is always used",
}
# Interceptor short names we map: (our name, attribute map, reasons).
SUPPORTED_INTERCEPTORS: Final[dict[str, tuple[str, Mapping[str, str], Mapping[str, str]]]] = {
    "TcpFailureDetector": ("failure_detector", FAILURE_DETECTOR_ATTRS, OPTION_FLAG),
    "MessageDispatchInterceptor": ("dispatch", DISPATCH_ATTRS, DISPATCH_REASONS),
    "MessageDispatch15Interceptor": ("dispatch", DISPATCH_ATTRS, DISPATCH_REASONS),
    "EncryptInterceptor": ("encrypt", ENCRYPT_ATTRS, ENCRYPT_REASONS),
}
UNSUPPORTED_INTERCEPTORS: Final = {
    "TcpPingInterceptor": "not needed: the failure detector re-checks members by itself",
    "OrderInterceptor": "not supported (Tomcat's docs: not of use in Tomcat clusters)",
    "FragmentationInterceptor": "not supported; receiver.max_message_size bounds messages",
    "GzipInterceptor": "not supported",
    "ThroughputInterceptor": "not supported (" + NO_JMX + ")",
    "TwoPhaseCommitInterceptor": "not for session replication (Tomcat's docs)",
    "NonBlockingCoordinator": "not for session replication (Tomcat's docs)",
    "SimpleCoordinator": "not for session replication (Tomcat's docs)",
}
# <Deployer className="...ha.deploy.FarmWarDeployer">: the farm deployer ([deployer]).
DEPLOYER_ATTRS: Final = {
    "tempDir": "deployer.temp_dir",
    "deployDir": "deployer.deploy_dir",
    "watchDir": "deployer.watch_dir",
    "watchEnabled": "deployer.watch_enabled",
    "processDeployFrequency": "deployer.process_deploy_frequency",
}
DEPLOYER_REASONS: Final = {
    "maxValidTime": "a transfer fails when its sender goes, not after a fixed time",
}

VALVE_ATTRS: Final = {
    "ReplicationValve": {
        "filter": "valves.replication.filter",
        "primaryIndicator": "valves.replication.primary_indicator",
        "primaryIndicatorName": "valves.replication.primary_indicator_name",
    },
    "JvmRouteBinderValve": {
        "enabled": "valves.route_binder.enabled",
        "sessionIdAttribute": "valves.route_binder.session_id_attribute",
    },
}
VALVE_CLASSES: Final = {
    "ReplicationValve": HA + "tcp.ReplicationValve",
    "JvmRouteBinderValve": HA + "session.JvmRouteBinderValve",
}
VALVE_REASONS: Final = {"statistics": NO_JMX, "asyncSupported": "every request is async here"}
DNS_PROVIDER_NAMES: Final = (
    "dns",
    TRIBES + "membership.cloud.DNSMembershipProvider",
    "DNSMembershipProvider",
)
# Tomcat's DNS provider reads the service name from this variable; so do we, for XML.
TOMCAT_DNS_VARIABLE: Final = "DNS_MEMBERSHIP_SERVICE_NAME"


def is_class(class_name: str | None, qualified: str) -> bool:
    """Tomcat's fully qualified class name, or its short name."""
    return class_name is not None and class_name in (qualified, qualified.rpartition(".")[2])


def _short_in(class_name: str | None, package: str) -> str | None:
    """``org...interceptors.Foo`` or ``Foo`` → ``Foo``; a class of another package → None."""
    if class_name is None:
        return None
    if "." not in class_name:
        return class_name
    prefix, _, short = class_name.rpartition(".")
    return short if prefix + "." == package else None


def server_xml_values(
    source: str | bytes | os.PathLike[str], environ: Mapping[str, str]
) -> tuple[dict[str, Raw], str]:
    """The settings ``source`` gives, and its name for messages.

    ``source`` is a path, or the XML itself (bytes, or a str starting with ``<``).
    ``environ`` is only read for Tomcat's own DNS membership variable.
    """
    root, name = read_xml(source, "server.xml")
    return _ServerXml(name, environ).read(root), name


class _ServerXml:
    """One pass over the XML tree, collecting ``Raw`` values and logging what is ignored."""

    def __init__(self, name: str, environ: Mapping[str, str]) -> None:
        self.name = name
        self.environ = environ
        self.values: dict[str, Raw] = {}
        self.background_delay = 10  # Tomcat's Engine backgroundProcessorDelay, seconds

    # -- helpers -----------------------------------------------------------------

    def warn(self, what: str, why: str) -> None:
        log.warning("%s: %s is ignored: %s", self.name, what, why)

    def put(self, path: str, value: object, elem: ET.Element, attr: str) -> None:
        # The value itself stays out of the source: it may be a key.
        self.values[path] = Raw(value, f"from <{local_name(elem.tag)} {attr}> in {self.name}")

    def attrs(
        self,
        elem: ET.Element,
        mapping: Mapping[str, str],
        reasons: Mapping[str, str],
        skip: Collection[str] = (),
    ) -> None:
        tag = local_name(elem.tag)
        for attr, value in elem.attrib.items():
            if attr == "className" or attr in skip:
                continue
            if attr in mapping:
                self.put(mapping[attr], value, elem, attr)
            else:
                why = reasons.get(attr, f"not a supported attribute of <{tag}>")
                self.warn(f'<{tag} {attr}="{value}">', why)

    def element(self, elem: ET.Element, why: str) -> None:
        """Warn about a whole element, naming its class and attributes."""
        tag = local_name(elem.tag)
        cls = elem.get("className")
        what = f'<{tag} className="{cls}">' if cls else f"<{tag}>"
        others = [a for a in elem.attrib if a != "className"]
        if others:
            why += " (with its attributes " + ", ".join(others) + ")"
        self.warn(what, why)

    def check_class(self, elem: ET.Element, qualified: str, fallback: str) -> None:
        cls = elem.get("className")
        if cls is not None and not is_class(cls, qualified):
            tag = local_name(elem.tag)
            self.warn(
                f'<{tag} className="{cls}">',
                f"not supported; {fallback} semantics are used",
            )

    def int_attr(self, elem: ET.Element, attr: str, key: str, default: int) -> int:
        value = elem.get(attr)
        if value is None:
            return default
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(
                key,
                value,
                "is not an integer",
                "an integer",
                source=f"from <{local_name(elem.tag)} {attr}> in {self.name}",
            ) from None

    # -- structure ---------------------------------------------------------------

    def read(self, root: ET.Element) -> dict[str, Raw]:
        clusters = [e for e in root.iter() if local_name(e.tag) == "Cluster"]
        parents = {child: parent for parent in root.iter() for child in parent}
        cluster = clusters[0] if clusters else None
        for extra in clusters[1:]:
            self.element(extra, "only the first <Cluster> of the file is used")
        engine = self._engine(cluster, root, parents)
        if engine is not None:
            self._engine_attrs(engine)
        if cluster is None:
            log.warning("%s: no <Cluster> element; sessions stay local", self.name)
            return self.values
        self.values["distributable"] = Raw(True, f"from <Cluster> in {self.name}")
        self._cluster(cluster)
        return self.values

    @staticmethod
    def _engine(
        cluster: ET.Element | None, root: ET.Element, parents: Mapping[ET.Element, ET.Element]
    ) -> ET.Element | None:
        node = cluster
        while node is not None:
            if local_name(node.tag) == "Engine":
                return node
            node = parents.get(node)
        if cluster is None:
            return next((e for e in root.iter() if local_name(e.tag) == "Engine"), None)
        return None

    def _engine_attrs(self, engine: ET.Element) -> None:
        route = engine.get("jvmRoute")
        if route is not None:
            self.put("jvm_route", route, engine, "jvmRoute")
        delay = self.int_attr(
            engine, "backgroundProcessorDelay", "manager.expiry_sweep_interval", 10
        )
        if delay <= 0:
            self.warn(
                f'<Engine backgroundProcessorDelay="{delay}">',
                "sessions must still expire; 10 s is used to compute the sweep interval",
            )
            delay = 10
        self.background_delay = delay
        if engine.get("backgroundProcessorDelay") is not None:
            self.values["manager.expiry_sweep_interval"] = Raw(
                float(6 * delay), f"from <Engine backgroundProcessorDelay> in {self.name}"
            )

    def _cluster(self, cluster: ET.Element) -> None:
        self.check_class(cluster, HA + "tcp.SimpleTcpCluster", "SimpleTcpCluster")
        self.attrs(cluster, CLUSTER_ATTRS, CLUSTER_REASONS)
        valves: list[str] = []
        for child in cluster:
            tag = local_name(child.tag)
            if tag == "Manager":
                self._manager(child)
            elif tag == "Channel":
                self._channel(child)
            elif tag == "Valve":
                valve = self._valve(child)
                if valve:
                    valves.append(valve)
            elif tag == "Deployer":
                self.check_class(child, HA + "deploy.FarmWarDeployer", "FarmWarDeployer")
                self.attrs(child, DEPLOYER_ATTRS, DEPLOYER_REASONS)
            elif tag == "ClusterListener":
                self._listener(child)
            else:
                self.element(child, f"not a supported child of <Cluster> ({tag})")
        if any(local_name(c.tag) == "Valve" for c in cluster):
            # As in Tomcat: the default valves are only added when none is configured.
            if "route_binder" not in valves:
                log.info("%s: no JvmRouteBinderValve; route rebinding is disabled", self.name)
                self.values["valves.route_binder.enabled"] = Raw(
                    False, f"from the absence of <Valve JvmRouteBinderValve> in {self.name}"
                )
            if "replication" not in valves:
                self.warn(
                    "the absence of <Valve ReplicationValve>",
                    "sessions are always replicated at the end of a request; "
                    "valves.replication defaults apply",
                )

    def _manager(self, elem: ET.Element) -> None:
        mapping = MANAGER_ATTRS
        if is_class(elem.get("className"), HA + "session.BackupManager"):
            self.put("manager.kind", "backup", elem, "className")
            mapping = {**MANAGER_ATTRS, **BACKUP_MANAGER_ATTRS}
        else:
            self.check_class(elem, HA + "session.DeltaManager", "DeltaManager")
        self.attrs(elem, mapping, MANAGER_REASONS, skip=("processExpiresFrequency",))
        if elem.get("processExpiresFrequency") is not None:
            key = "manager.expiry_sweep_interval"
            frequency = self.int_attr(elem, "processExpiresFrequency", key, 6)
            if frequency < 1:
                raise ConfigError(
                    key,
                    frequency,
                    "is not a positive processExpiresFrequency",
                    "an integer >= 1",
                    source=f"from <Manager processExpiresFrequency> in {self.name}",
                )
            self.values[key] = Raw(
                float(frequency * self.background_delay),
                f"from <Manager processExpiresFrequency> x backgroundProcessorDelay in {self.name}",
            )
        for child in elem:
            self.element(child, f"not supported inside <Manager> ({local_name(child.tag)})")

    def _listener(self, elem: ET.Element) -> None:
        cls = elem.get("className")
        if is_class(cls, HA + "session.ClusterSessionListener"):
            log.debug("%s: ClusterSessionListener is built in", self.name)
        elif is_class(cls, HA + "session.JvmRouteSessionIDBinderListener"):
            self.element(elem, "obsolete since Tomcat 8; JvmRouteBinderValve does its work")
        else:
            self.element(elem, "only the built-in ClusterSessionListener is supported")

    def _valve(self, elem: ET.Element) -> str | None:
        cls = elem.get("className")
        for short, qualified in VALVE_CLASSES.items():
            if is_class(cls, qualified):
                self.attrs(elem, VALVE_ATTRS[short], VALVE_REASONS)
                return "replication" if short == "ReplicationValve" else "route_binder"
        self.element(elem, "not a supported cluster valve")
        return None

    # -- channel -----------------------------------------------------------------

    def _channel(self, elem: ET.Element) -> None:
        self.check_class(elem, TRIBES + "group.GroupChannel", "GroupChannel")
        self.attrs(elem, {}, CHANNEL_REASONS)
        order: list[str] = []
        any_interceptor = False
        for child in elem:
            tag = local_name(child.tag)
            if tag == "Membership":
                self._membership(child)
            elif tag == "Receiver":
                self.check_class(child, TRIBES + "transport.nio.NioReceiver", "NioReceiver")
                self.attrs(child, RECEIVER_ATTRS, RECEIVER_REASONS)
            elif tag == "Sender":
                self._sender(child)
            elif tag == "Interceptor":
                any_interceptor = True
                name = self._interceptor(child)
                if name is not None and name in order:
                    self.element(child, f"{name!r} is already in the stack")
                elif name is not None:
                    order.append(name)
            else:
                self.element(child, f"not a supported child of <Channel> ({tag})")
        if any_interceptor:
            self.values["interceptors.order"] = Raw(
                tuple(order), f"from the <Interceptor> elements in {self.name}"
            )

    def _membership(self, elem: ET.Element) -> None:
        cls = elem.get("className")
        kind_source = f"from <Membership className> in {self.name}"
        if cls is None or is_class(cls, TRIBES + "membership.McastService"):
            self.attrs(elem, MCAST_ATTRS, MCAST_REASONS)
            if elem.get("domain") is not None:
                self.put("membership.domain", _domain(elem.get("domain", "")), elem, "domain")
        elif is_class(cls, TRIBES + "membership.StaticMembershipService"):
            self.values["membership.kind"] = Raw("static", kind_source)
            self.attrs(elem, {}, PROVIDER_REASONS)
            self._static_members(elem)
            return
        elif is_class(cls, TRIBES + "membership.cloud.CloudMembershipService"):
            self._cloud(elem, kind_source)
        else:
            self.element(elem, "not a supported membership service; multicast defaults are used")
        for child in elem:
            self.element(child, f"not supported inside <Membership> ({local_name(child.tag)})")

    def _cloud(self, elem: ET.Element, kind_source: str) -> None:
        provider = elem.get("membershipProviderClassName", "kubernetes")
        self.attrs(elem, {}, PROVIDER_REASONS, skip=("membershipProviderClassName",))
        if provider not in DNS_PROVIDER_NAMES:
            self.warn(
                f'<Membership membershipProviderClassName="{provider}">',
                "only the DNS provider is supported; use membership.kind = 'dns' with a "
                "headless Service (multicast defaults are used)",
            )
            return
        self.values["membership.kind"] = Raw("dns", kind_source)
        service = self.environ.get(TOMCAT_DNS_VARIABLE)
        if service:
            self.values["membership.dns_name"] = Raw(service, f"from {TOMCAT_DNS_VARIABLE}")

    def _static_members(self, elem: ET.Element) -> None:
        members: list[str] = []
        for child in elem:
            tag = local_name(child.tag)
            if tag == "LocalMember":
                self.element(child, "this node is described by the receiver settings")
                continue
            if tag != "Member":
                self.element(child, f"not supported here ({tag})")
                continue
            host, port = child.get("host"), child.get("port")
            if not host or not port:
                raise ConfigError(
                    "membership.static_members",
                    dict(child.attrib),
                    "is a <Member> without host and port",
                    "<Member host=... port=...>",
                    source=f"from <Member> in {self.name}",
                )
            members.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
            for attr, value in child.attrib.items():
                if attr not in ("className", "host", "port"):
                    self.warn(f'<Member {attr}="{value}">', "members are identified by host:port")
        self.values["membership.static_members"] = Raw(
            tuple(members), f"from the <Member> elements in {self.name}"
        )

    def _sender(self, elem: ET.Element) -> None:
        self.check_class(
            elem, TRIBES + "transport.ReplicationTransmitter", "ReplicationTransmitter"
        )
        self.attrs(elem, SENDER_ATTRS, SENDER_REASONS)
        for child in elem:
            if local_name(child.tag) == "Transport":
                self.check_class(
                    child,
                    TRIBES + "transport.nio.PooledParallelSender",
                    "PooledParallelSender",
                )
                self.attrs(child, SENDER_ATTRS, SENDER_REASONS)
            else:
                self.element(child, f"not supported inside <Sender> ({local_name(child.tag)})")

    def _interceptor(self, elem: ET.Element) -> str | None:
        cls = elem.get("className")
        short = _short_in(cls, INTERCEPTORS)
        if short in SUPPORTED_INTERCEPTORS:
            name, mapping, reasons = SUPPORTED_INTERCEPTORS[short]
            if short == "MessageDispatch15Interceptor":
                log.info(
                    "%s: MessageDispatch15Interceptor is read as MessageDispatchInterceptor",
                    self.name,
                )
            self.attrs(elem, mapping, reasons)
            for child in elem:
                self.element(child, f"not supported inside <Interceptor> ({local_name(child.tag)})")
            return name
        if short == "StaticMembershipInterceptor":
            self.values["membership.kind"] = Raw(
                "static", f"from <Interceptor StaticMembershipInterceptor> in {self.name}"
            )
            self.attrs(elem, {}, OPTION_FLAG)
            self._static_members(elem)
        elif short == "DomainFilterInterceptor":
            domain = elem.get("domain")
            if domain is not None:
                self.put("membership.domain", _domain(domain), elem, "domain")
            self.attrs(elem, {}, {**OPTION_FLAG, "logInterval": "not supported"}, skip=("domain",))
        elif short in UNSUPPORTED_INTERCEPTORS:
            self.element(elem, UNSUPPORTED_INTERCEPTORS[short])
        else:
            self.element(elem, "unknown interceptor class")
        return None


def _domain(text: str) -> str:
    """Tomcat also accepts ``{1,2,3}`` (byte values) for a domain; keep it as latin-1 text."""
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            data = bytes(int(b) & 0xFF for b in stripped[1:-1].split(",") if b.strip())
        except ValueError:
            return text
        return data.decode("latin-1")
    return text
