"""The Kubernetes manifests of ``deploy/kubernetes/`` read as data, for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
FILES = ("deployment.yaml", "services.yaml", "secret.yaml.example")


def documents(name: str) -> list[dict[str, Any]]:
    """Every YAML document of one manifest file."""
    docs = [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d is not None]
    assert all(isinstance(d, dict) for d in docs), name
    return docs


def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of every manifest, by ``(kind, name)``."""
    found = {}
    for name in FILES:
        for doc in documents(name):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} twice"
            found[key] = doc
    return found


def app_container() -> dict[str, Any]:
    """The Deployment's one container."""
    (deployment,) = documents("deployment.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def pod_environment(pod_name: str, secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's variables as a pod named ``pod_name`` would see them.

    ``secrets`` gives each ``secretKeyRef`` by ``(secret name, key)``; a reference
    to anything else is an error (the test would have to learn it).
    """
    env = {}
    for var in app_container()["env"]:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        source = var["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[var["name"]] = secrets[(ref["name"], ref["key"])]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[var["name"]] = pod_name
        else:
            raise AssertionError(f"unknown source for {var['name']}: {source}")
    return env
