"""ClusterConfig.from_tomcat_xml: the seed server.xml, bare <Cluster>, web.xml, safety."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clustersession.config import ClusterConfig, ConfigError, DeployerConfig

SEED = Path(__file__).parents[1] / "fixtures" / "server.xml"
SECRET = "0123456789abcdef-secret"

WEB_XML_JAKARTA = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <display-name>shop</display-name>
  <distributable/>
  <session-config><session-timeout>45</session-timeout></session-config>
</web-app>
"""
WEB_XML_JAVAEE_NOT_DISTRIBUTABLE = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" version="4.0">
  <display-name>shop</display-name>
</web-app>
"""


@pytest.fixture
def seed_warnings(caplog: pytest.LogCaptureFixture) -> tuple[ClusterConfig, str]:
    with caplog.at_level(logging.WARNING, logger="clustersession.config"):
        config = ClusterConfig.from_tomcat_xml(SEED, environ={})
    return config, caplog.text


def test_seed_every_value_is_reflected(seed_warnings: tuple[ClusterConfig, str]) -> None:
    config, _ = seed_warnings
    # <Engine jvmRoute="node1">, and a <Cluster> means distributable.
    assert config.jvm_route == "node1"
    assert config.distributable is True
    # <Cluster channelSendOptions="8">
    assert config.channel_send_options == 8
    # <Manager DeltaManager expireSessionsOnShutdown="false" notifyListenersOnReplication="true">
    assert config.manager.expire_sessions_on_shutdown is False
    assert config.manager.notify_listeners_on_replication is True
    # <Membership McastService address port frequency dropTime>
    assert config.membership.kind == "multicast"
    assert config.membership.address == "228.0.0.4"
    assert config.membership.port == 45564
    assert config.membership.frequency == 500
    assert config.membership.drop_time == 3000
    # <Receiver NioReceiver address port autoBind>
    assert config.receiver.address == "localhost"
    assert config.receiver.port == 4000
    assert config.receiver.auto_bind == 100
    # <Sender ReplicationTransmitter><Transport PooledParallelSender/>: Tomcat's defaults.
    assert config.sender == ClusterConfig().sender
    # <Interceptor TcpFailureDetector/> then <Interceptor MessageDispatchInterceptor/>
    assert config.interceptors.order == ("failure_detector", "dispatch")
    # <Valve ReplicationValve filter=""/> and <Valve JvmRouteBinderValve/>
    assert config.valves.replication.filter == ""
    assert config.valves.route_binder.enabled is True
    # <Deployer FarmWarDeployer tempDir deployDir watchDir watchEnabled="false">
    assert config.deployer == DeployerConfig(
        temp_dir="/tmp/war-temp/",
        deploy_dir="/tmp/war-deploy/",
        watch_dir="/tmp/war-listen/",
        watch_enabled=False,
    )
    # Nothing else differs from the defaults.
    expected = ClusterConfig(
        distributable=True,
        jvm_route="node1",
        receiver=ClusterConfig().receiver.__class__(address="localhost"),
        deployer=config.deployer,
    )
    assert config == expected


def test_seed_unsupported_parts_are_warned(seed_warnings: tuple[ClusterConfig, str]) -> None:
    _, text = seed_warnings
    assert 'selectorTimeout="5000"' in text
    assert 'maxThreads="6"' in text
    # Supported or built-in parts are not warned about (the Deployer is honoured).
    for quiet in (
        "ClusterSessionListener",
        "autoBind",
        "dropTime",
        "Connector",
        "shutdown",
        "FarmWarDeployer",
        "deployDir",
    ):
        assert quiet not in text


def test_seed_records_come_from_the_named_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="clustersession.config"):
        ClusterConfig.from_tomcat_xml(SEED, environ={"CLUSTERSESSION_SECRET": SECRET})
    names = {r.name for r in caplog.records}
    assert names == {"clustersession.config"}
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert len(caplog.records) == 2  # selectorTimeout, maxThreads


def test_env_wins_over_server_xml() -> None:
    config = ClusterConfig.from_tomcat_xml(
        SEED,
        environ={
            "CLUSTERSESSION_JVM_ROUTE": "node9",
            "CLUSTERSESSION_SECRET": SECRET,
            "CLUSTERSESSION_RECEIVER__ADDRESS": "auto",
            "CLUSTERSESSION_MEMBERSHIP__PORT": "45565",
        },
    )
    assert config.jvm_route == "node9"
    assert config.secret == SECRET
    assert config.receiver.address == "auto"
    assert config.membership.port == 45565
    assert config.membership.frequency == 500


def test_env_distributable_applies_without_web_xml() -> None:
    config = ClusterConfig.from_tomcat_xml(SEED, environ={"CLUSTERSESSION_DISTRIBUTABLE": "false"})
    assert config.distributable is False


def test_bare_cluster_element() -> None:
    xml = """
    <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster" channelSendOptions="6">
      <Manager className="DeltaManager" expireSessionsOnShutdown="true"
               stateTransferTimeout="-1" sendAllSessions="false" sendAllSessionsSize="50"
               sendAllSessionsWaitTime="100" processExpiresFrequency="3"
               sessionAttributeNameFilter="user\\..*"/>
      <Channel className="org.apache.catalina.tribes.group.GroupChannel">
        <Membership className="org.apache.catalina.tribes.membership.McastService"
                    address="228.0.0.5" port="45600" frequency="1000" dropTime="6000"
                    bind="192.168.1.10" ttl="2" domain="shop" localLoopbackDisabled="true"/>
        <Receiver className="org.apache.catalina.tribes.transport.nio.NioReceiver"
                  address="auto" port="4100" autoBind="5"/>
        <Sender className="org.apache.catalina.tribes.transport.ReplicationTransmitter"
                timeout="7000">
          <Transport className="org.apache.catalina.tribes.transport.nio.PooledParallelSender"
                     maxRetryAttempts="3" poolSize="10" keepAliveCount="100"/>
        </Sender>
        <Interceptor className="org.apache.catalina.tribes.group.interceptors.EncryptInterceptor"
                     encryptionKey="000102030405060708090a0b0c0d0e0f" replayWindowTime="20000"/>
        <Interceptor className="MessageDispatchInterceptor" maxQueueSize="1024"
                     alwaysSend="false"/>
        <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpFailureDetector"
                     connectTimeout="2000" performReadTest="true" readTestTimeout="3000"
                     removeSuspectsTimeout="-1"/>
      </Channel>
      <Valve className="org.apache.catalina.ha.tcp.ReplicationValve"
             filter=".*\\.gif|.*\\.css" primaryIndicator="true"/>
      <Valve className="JvmRouteBinderValve" enabled="false" sessionIdAttribute="oldId"/>
    </Cluster>
    """
    config = ClusterConfig.from_tomcat_xml(xml, environ={})
    assert config.distributable is True
    assert config.channel_send_options == 6
    mg = config.manager
    assert mg.expire_sessions_on_shutdown is True
    assert mg.state_transfer_timeout == -1
    assert (mg.send_all_sessions, mg.send_all_sessions_size) == (False, 50)
    assert mg.send_all_sessions_wait_time == 100
    assert mg.expiry_sweep_interval == 30.0  # 3 x the default 10 s background delay
    assert mg.session_attribute_name_filter == "user\\..*"
    m = config.membership
    assert (m.address, m.port, m.frequency, m.drop_time) == ("228.0.0.5", 45600, 1000, 6000)
    assert (m.bind, m.ttl, m.domain, m.local_loopback_disabled) == ("192.168.1.10", 2, "shop", True)
    assert (config.receiver.address, config.receiver.port, config.receiver.auto_bind) == (
        "auto",
        4100,
        5,
    )
    s = config.sender
    assert (s.timeout, s.max_retry_attempts, s.pool_size, s.keep_alive_count) == (7000, 3, 10, 100)
    assert config.interceptors.order == ("encrypt", "dispatch", "failure_detector")
    assert config.secret == "000102030405060708090a0b0c0d0e0f"
    assert config.interceptors.encrypt.replay_window_time == 20000
    assert config.interceptors.dispatch.max_queue_size == 1024
    assert config.interceptors.dispatch.always_send is False
    fd = config.interceptors.failure_detector
    assert (fd.connect_timeout, fd.perform_read_test, fd.read_test_timeout) == (2000, True, 3000)
    assert fd.remove_suspects_timeout == -1
    assert config.valves.replication.filter == ".*\\.gif|.*\\.css"
    assert config.valves.replication.primary_indicator is True
    assert config.valves.route_binder.enabled is False
    assert config.valves.route_binder.session_id_attribute == "oldId"
    # A bare <Cluster> has no <Engine>, so the route is the host's.
    assert config.jvm_route == ClusterConfig().jvm_route


def test_engine_background_delay_scales_the_sweep() -> None:
    xml = """<Server><Service><Engine name="x" jvmRoute="a" backgroundProcessorDelay="5">
      <Host name="localhost"><Cluster>
        <Manager className="org.apache.catalina.ha.session.DeltaManager"
                 processExpiresFrequency="2"/>
      </Cluster></Host></Engine></Service></Server>"""
    config = ClusterConfig.from_tomcat_xml(xml, environ={})
    assert config.jvm_route == "a"
    assert config.manager.expiry_sweep_interval == 10.0
    xml2 = '<Engine jvmRoute="b" backgroundProcessorDelay="5"><Cluster/></Engine>'
    assert ClusterConfig.from_tomcat_xml(xml2, environ={}).manager.expiry_sweep_interval == 30.0


def test_empty_cluster_gets_tomcat_defaults() -> None:
    config = ClusterConfig.from_tomcat_xml(b"<Cluster/>", environ={})
    assert config == ClusterConfig(distributable=True, jvm_route=config.jvm_route)


def test_valves_given_without_route_binder_disable_it() -> None:
    xml = '<Cluster><Valve className="org.apache.catalina.ha.tcp.ReplicationValve"/></Cluster>'
    config = ClusterConfig.from_tomcat_xml(xml, environ={})
    assert config.valves.route_binder.enabled is False


def test_no_cluster_element_means_local_sessions(caplog: pytest.LogCaptureFixture) -> None:
    xml = '<Server><Service><Engine name="e" jvmRoute="solo"/></Service></Server>'
    with caplog.at_level(logging.WARNING, logger="clustersession.config"):
        config = ClusterConfig.from_tomcat_xml(xml, environ={})
    assert config.distributable is False
    assert config.jvm_route == "solo"
    assert "no <Cluster>" in caplog.text


def test_wrong_and_unknown_classes_are_warned(caplog: pytest.LogCaptureFixture) -> None:
    xml = """
    <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster" channelStartOptions="3">
      <Manager className="com.example.PersistentManager"
               mapSendOptions="6" notifyListenersOnReplication="false"/>
      <Channel className="org.apache.catalina.tribes.group.GroupChannel" heartbeatSleeptime="1">
        <Membership className="org.apache.catalina.tribes.membership.McastService" soTimeout="9"/>
        <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpPingInterceptor"/>
        <Interceptor className="org.apache.catalina.tribes.group.interceptors.OrderInterceptor"/>
        <Interceptor className="com.example.MyInterceptor"/>
        <Interceptor className="com.example.TcpFailureDetector"/>
        <Interceptor className="TcpFailureDetector" optionFlag="8"/>
        <Interceptor className="TcpFailureDetector"/>
        <Interceptor className="MessageDispatch15Interceptor" maxThreads="4"/>
      </Channel>
      <Valve className="org.apache.catalina.ha.authenticator.ClusterSingleSignOn"/>
      <ClusterListener className="org.apache.catalina.ha.session.JvmRouteSessionIDBinderListener"/>
      <ClusterListener className="com.example.Listener"/>
      <Fancy/>
    </Cluster>
    """
    with caplog.at_level(logging.WARNING, logger="clustersession.config"):
        config = ClusterConfig.from_tomcat_xml(xml, environ={})
    text = caplog.text
    assert "PersistentManager" in text and "DeltaManager semantics are used" in text
    assert "mapSendOptions" in text  # BackupManager's attribute, on another manager
    assert config.manager.kind == "delta"
    assert config.manager.notify_listeners_on_replication is False
    for name in (
        "channelStartOptions",
        "heartbeatSleeptime",
        "soTimeout",
        "TcpPingInterceptor",
        "OrderInterceptor",
        "com.example.MyInterceptor",
        "com.example.TcpFailureDetector",
        'optionFlag="8"',
        "already in the stack",
        'maxThreads="4"',
        "ClusterSingleSignOn",
        "JvmRouteSessionIDBinderListener",
        "com.example.Listener",
        "<Fancy>",
    ):
        assert name in text, name
    assert config.interceptors.order == ("failure_detector", "dispatch")
    # Valves were configured, none of them the route binder.
    assert config.valves.route_binder.enabled is False


def test_backup_manager_and_its_attributes(caplog: pytest.LogCaptureFixture) -> None:
    xml = """
    <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster">
      <Manager className="org.apache.catalina.ha.session.BackupManager" mapSendOptions="8"
               rpcTimeout="3000" accessTimeout="2000" terminateOnStartFailure="true"
               maxActiveSessions="100" notifyListenersOnReplication="false"/>
    </Cluster>
    """
    with caplog.at_level(logging.WARNING, logger="clustersession.config"):
        config = ClusterConfig.from_tomcat_xml(xml, environ={})
    manager = config.manager
    assert manager.kind == "backup" and manager.backups == 1  # Tomcat: exactly one backup
    assert (manager.map_send_options, manager.rpc_timeout, manager.access_timeout) == (
        8,
        3000,
        2000,
    )
    assert manager.terminate_on_start_failure is True
    assert manager.max_active_sessions == 100
    assert manager.notify_listeners_on_replication is False
    assert "BackupManager" not in caplog.text  # nothing ignored


def test_backup_manager_short_name_and_bad_send_options() -> None:
    short = '<Cluster><Manager className="BackupManager" mapSendOptions="ack,sync"/></Cluster>'
    config = ClusterConfig.from_tomcat_xml(short, environ={})
    assert (config.manager.kind, config.manager.map_send_options) == ("backup", 6)
    bad = '<Cluster><Manager className="BackupManager" mapSendOptions="udp"/></Cluster>'
    with pytest.raises(ConfigError, match="map_send_options"):
        ClusterConfig.from_tomcat_xml(bad, environ={})


def test_static_membership_interceptor_becomes_static_membership(
    caplog: pytest.LogCaptureFixture,
) -> None:
    xml = """
    <Cluster><Channel>
      <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpFailureDetector"/>
      <Interceptor
          className="org.apache.catalina.tribes.group.interceptors.StaticMembershipInterceptor">
        <LocalMember className="org.apache.catalina.tribes.membership.StaticMember"
                     uniqueId="{0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15}"/>
        <Member className="org.apache.catalina.tribes.membership.StaticMember"
                port="4000" host="web2" uniqueId="{1,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15}"/>
        <Member className="org.apache.catalina.tribes.membership.StaticMember"
                port="4001" host="fd00::3"/>
      </Interceptor>
    </Channel></Cluster>
    """
    with caplog.at_level(logging.WARNING, logger="clustersession.config"):
        config = ClusterConfig.from_tomcat_xml(xml, environ={})
    assert config.membership.kind == "static"
    assert config.membership.static_members == ("web2:4000", "[fd00::3]:4001")
    assert config.interceptors.order == ("failure_detector",)
    assert "<LocalMember" in caplog.text
    assert "uniqueId" in caplog.text


def test_static_membership_service() -> None:
    xml = """
    <Cluster><Channel>
      <Membership className="org.apache.catalina.tribes.membership.StaticMembershipService">
        <Member className="org.apache.catalina.tribes.membership.StaticMember"
                port="4000" host="10.0.0.2"/>
      </Membership>
    </Channel></Cluster>
    """
    config = ClusterConfig.from_tomcat_xml(xml, environ={})
    assert config.membership.kind == "static"
    assert config.membership.static_members == ("10.0.0.2:4000",)


def test_dns_membership_uses_tomcats_variable() -> None:
    xml = """
    <Cluster><Channel>
      <Membership className="org.apache.catalina.tribes.membership.cloud.CloudMembershipService"
                  membershipProviderClassName="dns"/>
    </Channel></Cluster>
    """
    config = ClusterConfig.from_tomcat_xml(
        xml, environ={"DNS_MEMBERSHIP_SERVICE_NAME": "app.default.svc.cluster.local"}
    )
    assert config.membership.kind == "dns"
    assert config.membership.dns_name == "app.default.svc.cluster.local"
    with pytest.raises(ConfigError, match=r"membership\.dns_name.*required"):
        ClusterConfig.from_tomcat_xml(xml, environ={})


def test_domain_filter_interceptor_sets_the_domain() -> None:
    xml = """<Cluster><Channel><Interceptor
      className="org.apache.catalina.tribes.group.interceptors.DomainFilterInterceptor"
      domain="{115,104,111,112}"/></Channel></Cluster>"""
    assert ClusterConfig.from_tomcat_xml(xml, environ={}).membership.domain == "shop"


# -- web.xml --------------------------------------------------------------------


def test_web_xml_with_distributable(tmp_path: Path) -> None:
    web = tmp_path / "web.xml"
    web.write_text(WEB_XML_JAKARTA, encoding="utf-8")
    config = ClusterConfig.from_tomcat_xml(SEED, web, environ={})
    assert config.distributable is True
    assert config.manager.max_inactive_interval == 45 * 60


def test_web_xml_without_distributable_keeps_sessions_local() -> None:
    config = ClusterConfig.from_tomcat_xml(SEED, WEB_XML_JAVAEE_NOT_DISTRIBUTABLE, environ={})
    assert config.distributable is False
    assert config.manager.max_inactive_interval == 1800


@pytest.mark.parametrize(
    "namespace",
    [
        "",
        ' xmlns="http://java.sun.com/xml/ns/j2ee"',
        ' xmlns="http://java.sun.com/xml/ns/javaee"',
        ' xmlns="http://xmlns.jcp.org/xml/ns/javaee"',
        ' xmlns="https://jakarta.ee/xml/ns/jakartaee"',
    ],
)
def test_web_xml_namespaces(namespace: str) -> None:
    web = f"<web-app{namespace}><distributable/></web-app>"
    assert ClusterConfig.from_tomcat_xml(b"<Cluster/>", web, environ={}).distributable is True


def test_web_xml_foreign_distributable_does_not_count() -> None:
    web = """<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" xmlns:x="urn:other">
      <x:distributable/></web-app>"""
    assert ClusterConfig.from_tomcat_xml(b"<Cluster/>", web, environ={}).distributable is False


def test_web_xml_session_timeout_zero_never_expires() -> None:
    web = "<web-app><session-config><session-timeout>0</session-timeout></session-config></web-app>"
    config = ClusterConfig.from_tomcat_xml(b"<Cluster/>", web, environ={})
    assert config.manager.max_inactive_interval == 0


def test_web_xml_errors() -> None:
    with pytest.raises(ConfigError, match="web-app"):
        ClusterConfig.from_tomcat_xml(b"<Cluster/>", "<not-web/>", environ={})
    with pytest.raises(
        ConfigError, match=r"max_inactive_interval.*session-timeout.*'soon'.*minutes"
    ):
        ClusterConfig.from_tomcat_xml(
            b"<Cluster/>",
            "<web-app><session-config><session-timeout>soon</session-timeout>"
            "</session-config></web-app>",
            environ={},
        )


def test_web_xml_decides_distributable_over_env_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="clustersession.config"):
        config = ClusterConfig.from_tomcat_xml(
            b"<Cluster/>",
            WEB_XML_JAKARTA,
            environ={"CLUSTERSESSION_DISTRIBUTABLE": "false"},
        )
    assert config.distributable is True
    assert "CLUSTERSESSION_DISTRIBUTABLE=false is ignored: the web.xml decides" in caplog.text


# -- safety and errors ------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Cluster channelSendOptions="&lol4;"/>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE Server [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Server><Engine jvmRoute="&xxe;"><Cluster/></Engine></Server>
"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY, "<!DOCTYPE Cluster><Cluster/>"])
def test_doctype_and_entities_are_refused(xml: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DOCTYPE"):
        ClusterConfig.from_tomcat_xml(xml, environ={})
    path = tmp_path / "server.xml"
    path.write_text(xml, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"server\.xml.*DOCTYPE"):
        ClusterConfig.from_tomcat_xml(path, environ={})
    with pytest.raises(ConfigError, match="DOCTYPE"):
        ClusterConfig.from_tomcat_xml(b"<Cluster/>", xml.replace("Cluster", "web-app"), environ={})


@pytest.mark.parametrize(
    ("xml", "fragments"),
    [
        (
            '<Cluster channelSendOptions="1"/>',
            ["channel_send_options", "<Cluster channelSendOptions>", "'1'", "8 (async)"],
        ),
        (
            '<Cluster channelSendOptions="bogus"/>',
            ["channel_send_options", "'bogus'", "8 (async)"],
        ),
        (
            '<Cluster><Channel><Membership port="abc"/></Channel></Cluster>',
            ["membership.port", "<Membership port>", "'abc'", "1..65535"],
        ),
        (
            '<Cluster><Channel><Receiver port="99999"/></Channel></Cluster>',
            ["receiver.port", "<Receiver port>", "99999", "1..65535"],
        ),
        (
            '<Cluster><Manager sendAllSessionsSize="0"/></Cluster>',
            ["manager.send_all_sessions_size", "<Manager sendAllSessionsSize>", "0", ">= 1"],
        ),
        (
            '<Cluster><Manager expireSessionsOnShutdown="maybe"/></Cluster>',
            ["expire_sessions_on_shutdown", "'maybe'", "true/false"],
        ),
        (
            '<Cluster><Valve className="ReplicationValve" filter="*.gif"/></Cluster>',
            ["valves.replication.filter", "<Valve filter>", "'*.gif'", "regular expression"],
        ),
        (
            '<Engine jvmRoute="node.1"><Cluster/></Engine>',
            ["jvm_route", "<Engine jvmRoute>", "'node.1'"],
        ),
        (
            '<Cluster><Manager processExpiresFrequency="0"/></Cluster>',
            ["expiry_sweep_interval", "processExpiresFrequency", "0"],
        ),
        ("<Cluster>", ["server.xml", "not well-formed"]),
    ],
)
def test_xml_value_errors_name_element_attribute_and_value(xml: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        ClusterConfig.from_tomcat_xml(xml, environ={})
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_missing_server_xml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        ClusterConfig.from_tomcat_xml(tmp_path / "missing.xml", environ={})
