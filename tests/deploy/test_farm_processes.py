"""Three uvicorn nodes on loopback and the ``clustersession`` command (real processes)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.loopback import SECRET, random_mcast_port, random_receiver_port
from tests.support.polling import wait_for

pytestmark = pytest.mark.network

SIZE = 20 * 1024 * 1024


def cluster_env(mcast_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERSESSION_")}
    env.update(
        CLUSTERSESSION_SECRET=SECRET,
        CLUSTERSESSION_DISTRIBUTABLE="true",
        CLUSTERSESSION_MEMBERSHIP__PORT=str(mcast_port),
        CLUSTERSESSION_MEMBERSHIP__BIND="127.0.0.1",
        CLUSTERSESSION_MEMBERSHIP__FREQUENCY="100",
        CLUSTERSESSION_MEMBERSHIP__DROP_TIME="1000",
        CLUSTERSESSION_RECEIVER__ADDRESS="127.0.0.1",
        CLUSTERSESSION_RECEIVER__PORT=str(random_receiver_port()),
        **extra,
    )
    return env


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[int, list[Path]]]:
    port = random_mcast_port()
    processes: list[subprocess.Popen[bytes]] = []
    dirs = []
    try:
        for i in range(3):
            deploy_dir = tmp_path / f"node{i}" / "deploy"
            dirs.append(deploy_dir)
            env = cluster_env(
                port,
                CLUSTERSESSION_JVM_ROUTE=f"n{i}",
                CLUSTERSESSION_DEPLOYER__DEPLOY_DIR=str(deploy_dir),
                CLUSTERSESSION_DEPLOYER__TEMP_DIR=str(tmp_path / f"node{i}" / "tmp"),
            )
            log = (tmp_path / f"node{i}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "--factory",
                        "tests.support.app:from_env",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "0",
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        assert wait_for(lambda: all((d / ".clustersession-farm.lock").exists() for d in dirs), 20)
        yield port, dirs
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def farm(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "clustersession",
            "farm",
            "--min-members",
            "3",
            "--wait",
            "20",
            "--timeout",
            "60",
            *args,
        ],
        env=cluster_env(port),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_list_undeploy_on_three_nodes(nodes: tuple[int, list[Path]], tmp_path: Path) -> None:
    port, dirs = nodes
    src = tmp_path / "bundle.tar"
    src.write_bytes(os.urandom(SIZE))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()

    done = farm(port, "deploy", str(src), "--name", "bundle.tar")
    assert done.returncode == 0, done.stderr
    for d in dirs:
        assert hashlib.sha256((d / "bundle.tar").read_bytes()).hexdigest() == digest

    listed = farm(port, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert len(doc) == 3
    assert all([a["sha256"] for a in m["artifacts"]] == [digest] for m in doc)

    gone = farm(port, "undeploy", "bundle.tar")
    assert gone.returncode == 0, gone.stderr
    assert not any((d / "bundle.tar").exists() for d in dirs)

    hostile = farm(port, "undeploy", "../etc")
    assert hostile.returncode != 0 and "refused" in hostile.stderr
