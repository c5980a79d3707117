"""deploy/kubernetes/ agrees with itself and with the configuration it sets.

No cluster needed: the manifests are parsed and their pod environment is given to
``ClusterConfig.from_env``, which refuses any unknown ``CLUSTERSESSION_*`` name.
tests/cluster/test_rolling_update_hosts.py runs a rollout of the same pods.
"""

from __future__ import annotations

from typing import Any

import pytest

from clustersession import ClusterConfig
from clustersession.config import ConfigError

from ..support.kubernetes import app_container, objects, pod_environment

# The longest name a Deployment gives a pod (63 characters, a DNS label).
POD_NAME = "clustersession-demo-" + "7d9f8b6c5d" + "-x2k4p" + "a" * 27


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    return objects()


@pytest.fixture(scope="module")
def secrets(manifests: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {
        (name, key): value
        for (kind, name), doc in manifests.items()
        if kind == "Secret"
        for key, value in doc["stringData"].items()
    }


@pytest.fixture(scope="module")
def config(secrets: dict[tuple[str, str], str]) -> ClusterConfig:
    return ClusterConfig.from_env(pod_environment(POD_NAME, secrets))


def pod_labels(manifests: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str]:
    labels: dict[str, str] = manifests[("Deployment", "clustersession-demo")]["spec"]["template"][
        "metadata"
    ]["labels"]
    return labels


def test_every_manifest_is_a_kubernetes_object(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert set(manifests) == {
        ("Deployment", "clustersession-demo"),
        ("Service", "clustersession-members"),
        ("Service", "clustersession-demo"),
        ("PodDisruptionBudget", "clustersession-demo"),
        ("Secret", "clustersession"),
    }
    assert all(doc["apiVersion"] for doc in manifests.values())


def test_the_pod_environment_is_a_valid_configuration(
    config: ClusterConfig, manifests: dict[tuple[str, str], dict[str, Any]]
) -> None:
    assert config.jvm_route == POD_NAME  # cookie-safe as it is
    assert config.distributable
    assert config.secret is not None
    assert config.membership.kind == "dns"
    members = manifests[("Service", "clustersession-members")]
    assert config.membership.dns_name == members["metadata"]["name"]
    ports = {p["name"]: p["containerPort"] for p in app_container()["ports"]}
    assert ports["cluster"] == config.receiver.port == members["spec"]["ports"][0]["port"]
    assert members["spec"]["ports"][0]["targetPort"] == "cluster"
    assert config.receiver.auto_bind > 1  # a pod may run several workers
    assert not config.manager.expire_sessions_on_shutdown  # a stopping pod keeps them


def test_the_loader_refuses_a_misspelt_name(secrets: dict[tuple[str, str], str]) -> None:
    env = pod_environment(POD_NAME, secrets)
    env["CLUSTERSESSION_MEMBERSHIP__DNSNAME"] = "typo"
    with pytest.raises(ConfigError, match="DNSNAME"):
        ClusterConfig.from_env(env)


def test_probes_ask_the_health_valve(config: ClusterConfig) -> None:
    container = app_container()
    health = config.valves.health
    assert health.readiness_path and health.liveness_path
    assert container["readinessProbe"]["httpGet"] == {"path": health.readiness_path, "port": "http"}
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": health.liveness_path, "port": "http"}
    assert "--port=8000" in container["command"]
    assert {"name": "http", "containerPort": 8000} in container["ports"]


def test_members_are_published_before_they_are_ready(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    members = manifests[("Service", "clustersession-members")]["spec"]
    assert members["clusterIP"] == "None"
    assert members["publishNotReadyAddresses"] is True  # a starting pod needs its transfer
    labels = pod_labels(manifests)
    for kind, name in [("Service", "clustersession-members"), ("Service", "clustersession-demo")]:
        assert manifests[(kind, name)]["spec"]["selector"] == labels
    deployment = manifests[("Deployment", "clustersession-demo")]["spec"]
    assert deployment["selector"]["matchLabels"] == labels
    budget = manifests[("PodDisruptionBudget", "clustersession-demo")]["spec"]
    assert budget["selector"]["matchLabels"] == labels


def test_a_rollout_keeps_every_session(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    spec = manifests[("Deployment", "clustersession-demo")]["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    command = app_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    graceful = next(
        int(arg.split("=")[1])
        for arg in app_container()["command"]
        if arg.startswith("--timeout-graceful-shutdown=")
    )
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + graceful
