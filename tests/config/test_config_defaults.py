"""Defaults, construction-time validation and helpers of ClusterConfig."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from clustersession.config import (
    ClusterConfig,
    ConfigError,
    DispatchConfig,
    FailureDetectorConfig,
    InterceptorsConfig,
    ManagerConfig,
    MembershipConfig,
    ReceiverConfig,
    ReplicationValveConfig,
    RouteBinderConfig,
    SenderConfig,
    ValvesConfig,
    default_jvm_route,
)

SECRET = "0123456789abcdef-secret"


def test_no_arguments_is_a_valid_single_node_config() -> None:
    config = ClusterConfig()
    assert config.distributable is False
    assert config.secret is None
    assert config.channel_send_options == 8
    assert config.jvm_route == default_jvm_route()


def test_tomcat_defaults() -> None:
    config = ClusterConfig()
    m = config.membership
    assert (m.kind, m.address, m.port, m.frequency, m.drop_time) == (
        "multicast",
        "228.0.0.4",
        45564,
        500,
        3000,
    )
    assert (m.bind, m.ttl, m.domain, m.static_members, m.dns_name) == (None, None, "", (), None)
    assert m.dns_refresh_interval == 5.0
    r = config.receiver
    assert (r.address, r.port, r.auto_bind, r.max_message_size) == ("auto", 4000, 100, 16 << 20)
    s = config.sender
    assert (s.timeout, s.max_retry_attempts, s.pool_size, s.max_wait) == (3000, 1, 25, 3000)
    assert (s.keep_alive_count, s.keep_alive_time, s.throw_on_failed_ack) == (-1, -1, True)
    i = config.interceptors
    assert i.order == ("failure_detector", "dispatch")
    assert i.failure_detector == FailureDetectorConfig(
        connect_timeout=1000,
        perform_send_test=True,
        perform_read_test=False,
        read_test_timeout=5000,
        remove_suspects_timeout=300,
    )
    assert i.dispatch == DispatchConfig(max_queue_size=64 << 20, always_send=True)
    mg = config.manager
    assert mg.max_inactive_interval == 1800
    assert mg.expiry_sweep_interval == 60.0
    assert mg.expire_sessions_on_shutdown is False
    assert mg.notify_listeners_on_replication is True
    assert mg.state_transfer_timeout == 60
    assert mg.send_all_sessions_size == 1000
    assert mg.send_all_sessions_wait_time == 2000
    v = config.valves
    assert v.replication.filter == ""
    assert v.route_binder.enabled is True
    assert v.route_binder.session_id_attribute == (
        "org.apache.catalina.ha.session.JvmRouteOriginalSessionID"
    )


def test_default_jvm_route_is_the_cookie_safe_short_host_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "web-1.example.org")
    assert default_jvm_route() == "web-1"
    monkeypatch.setattr(socket, "gethostname", lambda: "my host!.lan")
    assert default_jvm_route() == "my-host-"
    monkeypatch.setattr(socket, "gethostname", lambda: "")
    assert default_jvm_route() == "node"
    assert ClusterConfig().jvm_route == "node"


def test_frozen_and_replace() -> None:
    config = ClusterConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.distributable = True  # type: ignore[misc]
    changed = config.replace(distributable=True, secret=SECRET)
    assert changed.distributable and changed.secret == SECRET
    assert config.distributable is False
    with pytest.raises(ConfigError, match="jvm_route"):
        config.replace(jvm_route="a.b")
    assert dataclasses.replace(config, channel_send_options=6).channel_send_options == 6


def test_secret_is_hidden() -> None:
    config = ClusterConfig(secret=SECRET)
    assert SECRET not in repr(config)
    assert config.to_dict()["secret"] == "<hidden>"
    assert config.to_dict(include_secret=True)["secret"] == SECRET
    with pytest.raises(ConfigError) as info:
        ClusterConfig(secret="short-secret")
    assert "short-secret" not in str(info.value)
    assert "at least 16 characters" in str(info.value)


def test_to_dict_is_the_toml_layout() -> None:
    data = ClusterConfig(jvm_route="n1").to_dict()
    assert data["jvm_route"] == "n1"
    assert "secret" not in data
    assert data["membership"]["port"] == 45564
    assert data["interceptors"]["order"] == ["failure_detector", "dispatch"]
    assert data["interceptors"]["dispatch"]["always_send"] is True
    assert data["valves"]["route_binder"]["enabled"] is True


def test_lists_become_tuples_and_ints_floats() -> None:
    m = MembershipConfig(kind="static", static_members=["a:4000", "[::1]:4001"])  # type: ignore[arg-type]
    assert m.static_members == ("a:4000", "[::1]:4001")
    i = InterceptorsConfig(order=["dispatch"])  # type: ignore[arg-type]
    assert i.order == ("dispatch",)
    assert ManagerConfig(expiry_sweep_interval=30).expiry_sweep_interval == 30.0


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda: MembershipConfig(port=-1), ["membership.port", "-1", "1..65535"]),
        (lambda: MembershipConfig(port=70000), ["membership.port", "70000", "1..65535"]),
        (lambda: MembershipConfig(port=True), ["membership.port", "True", "integer"]),
        (lambda: MembershipConfig(address="10.0.0.1"), ["membership.address", "multicast"]),
        (lambda: MembershipConfig(drop_time=500), ["membership.drop_time", "500", "> 500"]),
        (lambda: MembershipConfig(ttl=0), ["membership.ttl", "0", "1..255"]),
        (lambda: MembershipConfig(bind="eth0"), ["membership.bind", "'eth0'", "IP"]),
        (lambda: MembershipConfig(kind="gossip"), ["membership.kind", "'gossip'", "static"]),  # type: ignore[arg-type]
        (lambda: MembershipConfig(kind="static"), ["membership.static_members", "host:port"]),
        (
            lambda: MembershipConfig(kind="static", static_members=("a:0",)),
            ["membership.static_members", "'a:0'", "host:port"],
        ),
        (
            lambda: MembershipConfig(static_members=("a:4000",)),
            ["membership.static_members", "'static'"],
        ),
        (lambda: MembershipConfig(kind="dns"), ["membership.dns_name", "required"]),
        (lambda: MembershipConfig(dns_refresh_interval=0), ["dns_refresh_interval", "> 0"]),
        (lambda: ReceiverConfig(port=0), ["receiver.port", "0", "1..65535"]),
        (lambda: ReceiverConfig(address="bad host"), ["receiver.address", "'bad host'", "auto"]),
        (lambda: ReceiverConfig(port=65500), ["receiver.auto_bind", "100", "1..36"]),
        (lambda: ReceiverConfig(max_message_size=10), ["receiver.max_message_size", "1024"]),
        (lambda: SenderConfig(timeout=0), ["sender.timeout", "0", ">= 1"]),
        (lambda: SenderConfig(keep_alive_count=0), ["sender.keep_alive_count", "-1"]),
        (lambda: InterceptorsConfig(order=("gzip",)), ["interceptors.order", "'gzip'", "dispatch"]),
        (
            lambda: InterceptorsConfig(order=("dispatch", "dispatch")),
            ["interceptors.order", "twice"],
        ),
        (
            lambda: InterceptorsConfig(order=("failure_detector", "encrypt")),
            ["interceptors.order", "'encrypt' first"],
        ),
        (
            lambda: ClusterConfig(interceptors=InterceptorsConfig(order=("encrypt",))),
            ["interceptors.order", "secret"],
        ),
        (lambda: ManagerConfig(send_all_sessions_size=0), ["send_all_sessions_size", "0", ">= 1"]),
        (lambda: ManagerConfig(state_transfer_timeout=-2), ["state_transfer_timeout", "-1"]),
        (lambda: ManagerConfig(max_active_sessions=0), ["max_active_sessions", "-1"]),
        (
            lambda: ManagerConfig(session_attribute_name_filter="("),
            ["session_attribute_name_filter", "'('", "regular expression"],
        ),
        (lambda: ReplicationValveConfig(filter="*.gif"), ["valves.replication.filter", "'*.gif'"]),
        (lambda: RouteBinderConfig(enabled="yes"), ["valves.route_binder.enabled", "'yes'"]),  # type: ignore[arg-type]
        (lambda: ValvesConfig(replication=None), ["valves.replication", "None"]),  # type: ignore[arg-type]
        (lambda: ClusterConfig(jvm_route="node.1"), ["jvm_route", "'node.1'", "A-Z a-z 0-9 _ -"]),
        (lambda: ClusterConfig(jvm_route=""), ["jvm_route", "''"]),
        (lambda: ClusterConfig(channel_send_options=1), ["channel_send_options", "1", "8 (async)"]),
        (lambda: ClusterConfig(channel_send_options=16), ["channel_send_options", "16", "6"]),
        (lambda: ClusterConfig(channel_send_options=4), ["channel_send_options", "sync (4)"]),
        (lambda: ClusterConfig(channel_send_options=0), ["channel_send_options", "0"]),
        (lambda: ClusterConfig(membership=None), ["membership", "None"]),  # type: ignore[arg-type]
    ],
)
def test_constructors_validate(make: object, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        make()  # type: ignore[operator]
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(info.value, ValueError)
    assert message.startswith(info.value.key)


def test_valid_variants() -> None:
    assert MembershipConfig(address="ff02::1", bind="192.168.1.5", ttl=4).ttl == 4
    assert MembershipConfig(kind="dns", dns_name="app-headless.default.svc").kind == "dns"
    assert ReceiverConfig(address="10.0.0.5", port=65436, auto_bind=100).port == 65436
    assert ManagerConfig(state_transfer_timeout=-1).state_transfer_timeout == -1
    assert ManagerConfig(max_inactive_interval=0).max_inactive_interval == 0
    for bits in (2, 6, 8, 10, 14):
        assert ClusterConfig(channel_send_options=bits).channel_send_options == bits
    config = ClusterConfig(
        secret=SECRET, interceptors=InterceptorsConfig(order=("encrypt", "failure_detector"))
    )
    assert config.interceptors.order == ("encrypt", "failure_detector")
