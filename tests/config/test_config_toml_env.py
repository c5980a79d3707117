"""ClusterConfig.load (TOML) and ClusterConfig.from_env, and env on top of TOML."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from clustersession.config import ClusterConfig, ConfigError
from clustersession.config.schema import settings

SECRET = "0123456789abcdef-secret"

FULL_TOML = """
distributable = true
jvm_route = "web1"
secret = "0123456789abcdef-secret"
channel_send_options = "ack,sync"

[membership]
kind = "static"
static_members = ["web2:4000", "10.0.0.3:4000", "[fd00::4]:4000"]
frequency = 1000
drop_time = 5000
domain = "shop"

[receiver]
address = "0.0.0.0"
port = 4100
auto_bind = 10
max_message_size = "32 MiB"

[sender]
timeout = 5000
max_retry_attempts = 2
pool_size = 8

[interceptors]
order = ["encrypt", "failure_detector", "dispatch"]

[interceptors.failure_detector]
connect_timeout = 2000
perform_read_test = true

[interceptors.dispatch]
max_queue_size = 1048576
always_send = false

[manager]
max_inactive_interval = 600
expiry_sweep_interval = 15
expire_sessions_on_shutdown = true
state_transfer_timeout = -1
send_all_sessions = false
send_all_sessions_size = 50
session_attribute_name_filter = "user\\\\..*"

[valves.replication]
filter = '.*\\.(gif|js|css)'

[valves.route_binder]
enabled = false
session_id_attribute = ""
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_full_file(tmp_path: Path) -> None:
    config = ClusterConfig.load(write(tmp_path, FULL_TOML), environ={})
    assert config.distributable is True
    assert config.jvm_route == "web1"
    assert config.secret == SECRET
    assert config.channel_send_options == 6
    m = config.membership
    assert m.kind == "static"
    assert m.static_members == ("web2:4000", "10.0.0.3:4000", "[fd00::4]:4000")
    assert (m.frequency, m.drop_time, m.domain) == (1000, 5000, "shop")
    assert config.receiver.address == "0.0.0.0"
    assert config.receiver.max_message_size == 32 * 1024 * 1024
    assert (config.sender.timeout, config.sender.max_retry_attempts) == (5000, 2)
    assert config.interceptors.order == ("encrypt", "failure_detector", "dispatch")
    assert config.interceptors.failure_detector.connect_timeout == 2000
    assert config.interceptors.failure_detector.perform_read_test is True
    assert config.interceptors.dispatch.always_send is False
    assert config.manager.expiry_sweep_interval == 15.0
    assert config.manager.state_transfer_timeout == -1
    assert config.manager.session_attribute_name_filter == "user\\..*"
    assert config.valves.replication.filter == ".*\\.(gif|js|css)"
    assert config.valves.route_binder.enabled is False
    assert config.valves.route_binder.session_id_attribute == ""


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    assert ClusterConfig.load(write(tmp_path, ""), environ={}) == ClusterConfig()


def test_round_trip_through_to_dict(tmp_path: Path) -> None:
    config = ClusterConfig.load(write(tmp_path, FULL_TOML), environ={})
    data = config.to_dict(include_secret=True)
    lines: list[str] = []

    def emit(table: dict[str, object], name: str) -> None:
        subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if name:
            lines.append(f"[{name}]")
        for key, value in table.items():
            if key not in subtables:
                lines.append(f"{key} = {toml_value(value)}")
        for key, sub in subtables.items():
            emit(sub, f"{name}.{key}" if name else key)

    emit(data, "")
    again = ClusterConfig.load(write(tmp_path, "\n".join(lines)), environ={})
    assert again == config


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value + "'"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def test_env_wins_over_the_file(tmp_path: Path) -> None:
    environ = {
        "CLUSTERSESSION_JVM_ROUTE": "web7",
        "CLUSTERSESSION_SECRET": "another-secret-of-enough-length",
        "CLUSTERSESSION_DISTRIBUTABLE": "false",
        "CLUSTERSESSION_MEMBERSHIP__KIND": "multicast",
        "CLUSTERSESSION_MEMBERSHIP__STATIC_MEMBERS": "",
        "CLUSTERSESSION_MEMBERSHIP__PORT": "45565",
        "CLUSTERSESSION_INTERCEPTORS__ORDER": "encrypt, dispatch",
        "CLUSTERSESSION_INTERCEPTORS__DISPATCH__MAX_QUEUE_SIZE": "2MiB",
        "CLUSTERSESSION_MANAGER__EXPIRY_SWEEP_INTERVAL": "2.5",
        "CLUSTERSESSION_VALVES__ROUTE_BINDER__ENABLED": "yes",
        "PATH": "/usr/bin",  # other variables are none of our business
    }
    config = ClusterConfig.load(write(tmp_path, FULL_TOML), environ=environ)
    assert config.jvm_route == "web7"
    assert config.secret == "another-secret-of-enough-length"
    assert config.distributable is False
    assert config.membership.kind == "multicast"
    assert config.membership.static_members == ()
    assert config.membership.port == 45565
    assert config.membership.frequency == 1000  # from the file
    assert config.interceptors.order == ("encrypt", "dispatch")
    assert config.interceptors.dispatch.max_queue_size == 2 * 1024 * 1024
    assert config.manager.expiry_sweep_interval == 2.5
    assert config.valves.route_binder.enabled is True


def test_load_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERSESSION_JVM_ROUTE", "from-os")
    assert ClusterConfig.load(write(tmp_path, "")).jvm_route == "from-os"
    assert ClusterConfig.from_env().jvm_route == "from-os"


def test_from_env_alone() -> None:
    config = ClusterConfig.from_env(
        {
            "CLUSTERSESSION_DISTRIBUTABLE": "true",
            "CLUSTERSESSION_JVM_ROUTE": "node_2",
            "CLUSTERSESSION_SECRET": SECRET,
            "CLUSTERSESSION_CHANNEL_SEND_OPTIONS": "async,use_ack",
            "CLUSTERSESSION_MEMBERSHIP__KIND": "dns",
            "CLUSTERSESSION_MEMBERSHIP__DNS_NAME": "app-headless.prod.svc.cluster.local",
            "CLUSTERSESSION_MEMBERSHIP__TTL": "2",
            "CLUSTERSESSION_RECEIVER__PORT": "4010",
            "CLUSTERSESSION_MANAGER__SESSION_ATTRIBUTE_NAME_FILTER": "",
        }
    )
    assert config.distributable is True
    assert config.jvm_route == "node_2"
    assert config.channel_send_options == 10
    assert config.membership.kind == "dns"
    assert config.membership.dns_name == "app-headless.prod.svc.cluster.local"
    assert config.membership.ttl == 2
    assert config.receiver.port == 4010
    assert config.manager.session_attribute_name_filter is None


def test_backup_manager_from_toml_and_env(tmp_path: Path) -> None:
    toml = '[manager]\nkind = "backup"\nbackups = 2\nmap_send_options = "ack"\n'
    config = ClusterConfig.load(write(tmp_path, toml), environ={})
    assert (config.manager.kind, config.manager.backups, config.manager.map_send_options) == (
        "backup",
        2,
        2,
    )
    environ = {"CLUSTERSESSION_MANAGER__KIND": "delta", "CLUSTERSESSION_MANAGER__BACKUPS": "3"}
    config = ClusterConfig.load(write(tmp_path, toml), environ=environ)
    assert (config.manager.kind, config.manager.backups) == ("delta", 3)
    assert ClusterConfig().manager.kind == "delta"  # the default stays the seed's
    for bad in ({"CLUSTERSESSION_MANAGER__KIND": "lazy"}, {"CLUSTERSESSION_MANAGER__BACKUPS": "4"}):
        with pytest.raises(ConfigError, match="manager"):
            ClusterConfig.from_env(bad)


def test_from_env_empty_is_defaults() -> None:
    assert ClusterConfig.from_env({}) == ClusterConfig()


def test_every_setting_has_an_env_variable() -> None:
    known = settings()
    assert known["membership.port"].env_name == "CLUSTERSESSION_MEMBERSHIP__PORT"
    assert known["jvm_route"].env_name == "CLUSTERSESSION_JVM_ROUTE"
    assert (
        known["interceptors.failure_detector.connect_timeout"].env_name
        == "CLUSTERSESSION_INTERCEPTORS__FAILURE_DETECTOR__CONNECT_TIMEOUT"
    )
    for info in known.values():
        value = "1000" if info.annotation is int else None
        if value is None:
            continue
        with pytest.raises(ConfigError) as error:
            ClusterConfig.from_env({info.env_name: "not-a-number"})
        assert info.env_name in str(error.value)


def test_config_variable_points_from_env_at_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'jvm_route = "filed"\n[membership]\nport = 45570\n')
    config = ClusterConfig.from_env(
        {"CLUSTERSESSION_CONFIG": str(path), "CLUSTERSESSION_MEMBERSHIP__PORT": "45571"}
    )
    assert config.jvm_route == "filed"
    assert config.membership.port == 45571


def test_config_variable_ignored_by_load_is_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, "")
    with caplog.at_level(logging.WARNING, logger="clustersession.config"):
        ClusterConfig.load(path, environ={"CLUSTERSESSION_CONFIG": "/elsewhere.toml"})
    assert "CLUSTERSESSION_CONFIG=/elsewhere.toml is ignored" in caplog.text


def test_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    config = ClusterConfig.from_env({"CLUSTERSESSION_SECRET_FILE": str(secret)})
    assert config.secret == SECRET
    with pytest.raises(ConfigError, match=r"CLUSTERSESSION_SECRET_FILE.*only one"):
        ClusterConfig.from_env(
            {"CLUSTERSESSION_SECRET_FILE": str(secret), "CLUSTERSESSION_SECRET": SECRET}
        )
    with pytest.raises(ConfigError, match=r"CLUSTERSESSION_SECRET_FILE.*cannot be read"):
        ClusterConfig.from_env({"CLUSTERSESSION_SECRET_FILE": str(tmp_path / "missing")})


def test_distributable_without_secret_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="clustersession.config"):
        ClusterConfig.from_env({"CLUSTERSESSION_DISTRIBUTABLE": "1"})
    assert "refuse to start" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clustersession.config"):
        ClusterConfig.from_env(
            {"CLUSTERSESSION_DISTRIBUTABLE": "1", "CLUSTERSESSION_SECRET": SECRET}
        )
    assert caplog.text == ""


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[membership]\nport = 70000\n", ["membership.port", "70000", "1..65535", "cluster.toml"]),
        (
            "[membership]\nport = 'abc'\n",
            ["membership.port", "'abc'", "not an integer", "1..65535"],
        ),
        ("[membership]\nport = true\n", ["membership.port", "True", "not an integer"]),
        ("[membership]\nprot = 4000\n", ["membership.prot", "4000", "unknown key", "port"]),
        ("colour = 'red'\n", ["colour", "'red'", "unknown key", "jvm_route"]),
        ("[database]\nurl = 'x'\n", ["database", "unknown section", "membership"]),
        ("[valves.cache]\nx = 1\n", ["valves.cache", "unknown section", "route_binder"]),
        ("membership = 3\n", ["membership", "3", "section"]),
        ("channel_send_options = 1\n", ["channel_send_options", "1", "byte_message", "8 (async)"]),
        ("channel_send_options = 16\n", ["channel_send_options", "16", "8 (async)"]),
        ("channel_send_options = 'bogus'\n", ["channel_send_options", "'bogus'", "8 (async)"]),
        ("channel_send_options = 'sync'\n", ["channel_send_options", "ack (2)"]),
        ("channel_send_options = 'udp'\n", ["channel_send_options", "'udp'", ">= 16"]),
        ("[valves.replication]\nfilter = '*.gif'\n", ["valves.replication.filter", "'*.gif'"]),
        ("jvm_route = 'node.1'\n", ["jvm_route", "'node.1'", "A-Z a-z 0-9 _ -"]),
        ("[manager]\nsend_all_sessions_size = 0\n", ["send_all_sessions_size", "0", ">= 1"]),
        ("[manager]\nexpire_sessions_on_shutdown = 'maybe'\n", ["expire_sessions_on", "'maybe'"]),
        ("[receiver]\nmax_message_size = '3 TB'\n", ["max_message_size", "'3 TB'", "MiB"]),
        ("[interceptors]\norder = [1]\n", ["interceptors.order", "[1]", "list of strings"]),
        ("jvm_route = \n", ["cluster.toml", "not valid TOML"]),
    ],
)
def test_toml_errors(tmp_path: Path, text: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        ClusterConfig.load(write(tmp_path, text), environ={})
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot be read"):
        ClusterConfig.load(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("environ", "fragments"),
    [
        (
            {"CLUSTERSESSION_MEMBERSHIP__PORT": "abc"},
            ["membership.port", "CLUSTERSESSION_MEMBERSHIP__PORT", "'abc'", "1..65535"],
        ),
        (
            {"CLUSTERSESSION_MEMBERSHIP__PORT": "0"},
            ["CLUSTERSESSION_MEMBERSHIP__PORT", "0", "1..65535"],
        ),
        (
            {"CLUSTERSESSION_MEMBERSHIP_PORT": "45565"},
            ["CLUSTERSESSION_MEMBERSHIP_PORT", "did you mean CLUSTERSESSION_MEMBERSHIP__PORT"],
        ),
        ({"CLUSTERSESSION_BOGUS": "1"}, ["CLUSTERSESSION_BOGUS", "not a known"]),
        (
            {"CLUSTERSESSION_CHANNEL_SEND_OPTIONS": "1"},
            ["CLUSTERSESSION_CHANNEL_SEND_OPTIONS", "'1'", "8 (async)"],
        ),
        (
            {"CLUSTERSESSION_DISTRIBUTABLE": "perhaps"},
            ["CLUSTERSESSION_DISTRIBUTABLE", "'perhaps'", "true/false"],
        ),
        ({"CLUSTERSESSION_JVM_ROUTE": "a.b"}, ["CLUSTERSESSION_JVM_ROUTE", "'a.b'"]),
        (
            {"CLUSTERSESSION_MEMBERSHIP__STATIC_MEMBERS": "a:1"},
            ["membership.static_members", "'static'"],
        ),
        (
            {"CLUSTERSESSION_VALVES__REPLICATION__FILTER": "(unclosed"},
            ["CLUSTERSESSION_VALVES__REPLICATION__FILTER", "'(unclosed'", "regular expression"],
        ),
    ],
)
def test_env_errors(environ: dict[str, str], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        ClusterConfig.from_env(environ)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_unknown_variable_does_not_echo_its_value() -> None:
    with pytest.raises(ConfigError) as info:
        ClusterConfig.from_env({"CLUSTERSESSION_SECRETT": "s3cr3t-value-xyz"})
    assert "s3cr3t" not in str(info.value)
    assert "did you mean CLUSTERSESSION_SECRET" in str(info.value)


def test_env_errors_also_apply_on_top_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CLUSTERSESSION_NOPE"):
        ClusterConfig.load(write(tmp_path, ""), environ={"CLUSTERSESSION_NOPE": "1"})


def test_previous_secrets_from_toml_and_env_are_hidden(tmp_path: Path) -> None:
    old, older = "old-secret-0123456789", "older-secret-012345678"
    path = write(
        tmp_path, f'secret = "new-secret-0123456789"\nprevious_secrets = ["{old}", "{older}"]\n'
    )
    assert ClusterConfig.load(path, environ={}).previous_secrets == (old, older)
    from_env = ClusterConfig.from_env(
        {
            "CLUSTERSESSION_SECRET": "new-secret-0123456789",
            "CLUSTERSESSION_PREVIOUS_SECRETS": f"{old},{older}",
        }
    )
    assert from_env.previous_secrets == (old, older)
    assert old not in repr(from_env) and old not in str(from_env.to_dict())
    assert from_env.to_dict()["previous_secrets"] == ["<hidden>", "<hidden>"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"previous_secrets": ("old-secret-0123456789",)}, "secret is not"),
        ({"secret": "new-secret-0123456789", "previous_secrets": ("short",)}, "too short"),
    ],
)
def test_previous_secrets_need_a_secret_and_length(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        ClusterConfig(**changes)
    assert "short" not in str(raised.value).replace("too short", "")
