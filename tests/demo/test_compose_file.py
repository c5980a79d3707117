"""docker-compose.yml agrees with the app, its configuration and the HAProxy config.

No Docker needed: the files are parsed and checked against ``ClusterConfig`` and
``demo_app.haproxy.haproxy_config``. ``scripts/compose-demo.sh`` runs them for real.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from clustersession import ClusterConfig
from demo_app.haproxy import READINESS_PATH as READINESS
from demo_app.haproxy import haproxy_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CI_OVERRIDE = ROOT / "docker-compose.ci.yml"
HAPROXY_CFG = ROOT / "demo_app" / "haproxy.cfg"
ENV_EXAMPLE = ROOT / "demo_app" / "compose.env.example"
DOCKERFILE = ROOT / "demo_app" / "Dockerfile"

MULTICAST_NODES = ("node1", "node2", "node3")
DNS_NODE = "node"
APP_PORT = 8000
COOKIE = "session"  # the middleware's default session_cookie, used by the demo app


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set: the default."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service["environment"]
    assert isinstance(env, dict), "environment as a mapping, please"
    return {str(k): str(v) for k, v in env.items()}


def config_of(service: dict[str, Any]) -> ClusterConfig:
    """What the node's ``ClusterConfig.from_env()`` loads: env file, then environment."""
    env_file = service["env_file"]
    assert isinstance(env_file, str)
    assert interpolate(env_file) == "demo_app/compose.env"
    from_file = env_file_values(ENV_EXAMPLE)
    from_file["CLUSTERSESSION_SECRET"] = "a-dummy-secret-for-the-test"
    return ClusterConfig.from_env(environ={**from_file, **environment(service)})


def haproxy_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_the_env_example_holds_the_secret_and_the_status_token() -> None:
    values = env_file_values(ENV_EXAMPLE)
    assert set(values) == {"CLUSTERSESSION_SECRET", "CLUSTERSESSION_VALVES__STATUS__TOKEN"}
    config = ClusterConfig.from_env(environ=values)
    assert config.secret and len(config.secret) >= 16


def test_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {*MULTICAST_NODES, "lb", DNS_NODE, "lb-dns"}
    for name in (*MULTICAST_NODES, DNS_NODE):
        build = services[name]["build"]
        assert build == {"context": ".", "dockerfile": "demo_app/Dockerfile"}
        assert services[name]["networks"] == ["cluster"]
    for name in (DNS_NODE, "lb-dns"):
        assert services[name]["profiles"] == ["dns"]
    for name in (*MULTICAST_NODES, "lb"):
        assert "profiles" not in services[name]


def test_every_node_environment_loads_as_a_distributable_config(
    services: dict[str, dict[str, Any]],
) -> None:
    routes = []
    for name in MULTICAST_NODES:
        config = config_of(services[name])
        assert config.distributable
        assert config.membership.kind == "multicast"
        assert (config.membership.address, config.membership.port) == ("228.0.0.4", 45564)
        assert config.valves.status.path == "/cluster-status"
        assert config.valves.status.token
        assert config.jvm_route == name == services[name]["hostname"]
        routes.append(config.jvm_route)
    assert len(set(routes)) == len(routes)


def test_the_dns_profile_finds_peers_by_the_service_name(
    services: dict[str, dict[str, Any]],
) -> None:
    service = services[DNS_NODE]
    env = environment(service)
    assert "CLUSTERSESSION_JVM_ROUTE" not in env  # per replica: its hostname
    assert "hostname" not in service  # so that --scale gives distinct ones
    config = config_of(service)
    assert config.distributable
    assert config.membership.kind == "dns"
    assert config.membership.dns_name == DNS_NODE
    assert config.receiver.auto_bind > 1  # a replica may run several workers
    assert config.valves.status.path == "/cluster-status"


def test_haproxy_cfg_is_what_the_generator_writes() -> None:
    text = HAPROXY_CFG.read_text()
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    servers = [(route, f"{route}:{APP_PORT}") for route in MULTICAST_NODES]
    assert body == haproxy_config("*:8080", servers, cookie=COOKIE)


def test_haproxy_routes_every_node_by_its_cookie_suffix(
    services: dict[str, dict[str, Any]],
) -> None:
    lines = haproxy_lines(HAPROXY_CFG.read_text())
    assert "bind *:8080" in lines
    assert "option redispatch 1" in lines
    assert f"option httpchk GET {READINESS}" in lines
    assert any(line.startswith("default-server check") for line in lines)
    routes = [environment(services[name])["CLUSTERSESSION_JVM_ROUTE"] for name in MULTICAST_NODES]
    servers = {line.split()[1]: line.split()[2] for line in lines if line.startswith("server ")}
    assert servers == {
        route: f"{name}:{APP_PORT}" for route, name in zip(routes, MULTICAST_NODES, strict=True)
    }
    for route in routes:
        assert f"acl to_{route} req.cook({COOKIE}) -m end .{route}" in lines
        assert f"use-server {route} if to_{route}" in lines


def test_the_balancers_are_published_on_loopback_only(
    services: dict[str, dict[str, Any]],
) -> None:
    lb = services["lb"]
    assert lb["image"] == "haproxy:2.6"
    assert lb["ports"] == ["127.0.0.1:8080:8080"]
    assert "./demo_app/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    assert set(lb["depends_on"]) == set(MULTICAST_NODES)
    assert services["lb-dns"]["ports"] == ["127.0.0.1:8081:8080"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
        if name not in ("lb", "lb-dns"):
            assert "ports" not in service, name


def test_the_dns_balancer_config(compose: dict[str, Any], services: dict[str, Any]) -> None:
    (mount,) = services["lb-dns"]["configs"]
    assert mount["target"] == "/usr/local/etc/haproxy/haproxy.cfg"
    lines = haproxy_lines(compose["configs"][mount["source"]]["content"])
    assert "bind *:8080" in lines
    assert "option redispatch 1" in lines
    assert f"option httpchk GET {READINESS}" in lines
    assert f"server-template node 1-9 {DNS_NODE}:{APP_PORT}" in lines
    assert f"stick store-response res.cook({COOKIE})" in lines


def test_the_nodes_run_the_app_on_the_port_haproxy_uses(
    services: dict[str, dict[str, Any]],
) -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    cmd = '["uvicorn", "demo_app.app:app", "--host", "0.0.0.0", "--port", "8000"]'
    assert f"CMD {cmd}" in text
    for name in (*MULTICAST_NODES, DNS_NODE):
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{APP_PORT}{READINESS}" in probe
        # The path probed is the node's readiness probe (503 until it holds the sessions).
        assert config_of(services[name]).valves.health.readiness_path == READINESS
    assert f"CLUSTERSESSION_VALVES__HEALTH__READINESS_PATH={READINESS}" in text


def test_the_ci_override_only_builds_on_the_host_network(
    services: dict[str, dict[str, Any]],
) -> None:
    override = yaml.safe_load(CI_OVERRIDE.read_text())
    assert set(override) == {"services"}
    built = {name for name, service in services.items() if "build" in service}
    assert set(override["services"]) == built
    for service in override["services"].values():
        assert service == {"build": {"network": "host"}}
