"""The WSGI adapters run the farm deployer beside their manager (``web.farm``).

In process: a plain WSGI middleware node and a Flask node of one loopback
cluster, each with a ``[deployer]`` config; the deployer starts with the
``ManagerThread``, on its loop and channel, once per process, and stops with it.
Real processes: a Flask and a Django gunicorn node (with the hooks, so their
members and deployers start at worker boot) get a file from the command.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify

from clustersession.config import ClusterConfig, DeployerConfig
from clustersession.deploy import Entry, FarmDeployer
from clustersession.deploy.transfer import file_digest
from clustersession.flask import ClusterSessionInterface
from clustersession.wsgi import ClusterSessionWSGIMiddleware
from tests.support.loopback import loopback_config, random_mcast_port
from tests.support.polling import wait_for
from tests.support.servers import DJANGO, FLASK, ROOT, Cluster, gunicorn, running

pytestmark = pytest.mark.network


@pytest.fixture
def root() -> Iterator[Path]:
    made = Path(tempfile.mkdtemp(prefix="clustersession-farm-wsgi-"))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def node_config(port: int, root: Path, route: str) -> ClusterConfig:
    deployer = DeployerConfig(
        deploy_dir=str(root / route / "deploy"), temp_dir=str(root / route / "tmp")
    )
    return loopback_config(port, jvm_route=route, deployer=deployer)


def plain_wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_the_wsgi_middleware_and_flask_start_a_deployer_on_the_managers_channel(
    root: Path,
) -> None:
    port = random_mcast_port()
    wsgi = ClusterSessionWSGIMiddleware(plain_wsgi_app, config=node_config(port, root, "w"))
    interface = ClusterSessionInterface(node_config(port, root, "f"))
    app = Flask("farm")
    app.session_interface = interface
    app.get("/")(lambda: jsonify({}))
    try:
        assert wsgi.manager.companion is None  # nothing before the first request
        wsgi.manager.start()
        assert app.test_client().get("/").status_code == 200  # Flask's first request
        farms = [wsgi.manager.companion, interface.manager.companion]
        for farm, manager in zip(farms, (wsgi.manager, interface.manager), strict=True):
            assert isinstance(farm, FarmDeployer)
            assert farm.channel.local == manager.view().local  # the manager's channel
        wsgi.manager.start()  # once per process: a second start builds nothing
        assert wsgi.manager.companion is farms[0]

        farm_w, farm_f = farms
        assert isinstance(farm_w, FarmDeployer) and isinstance(farm_f, FarmDeployer)
        assert wait_for(lambda: len(farm_w.channel.members) == 1, 10)
        src = root / "src.bin"
        src.write_bytes(os.urandom(2 * 1024 * 1024))
        size, digest = file_digest(src)
        entry = Entry("app.whl", size, digest, time.time())
        outcome = wsgi.manager.run(farm_w.deploy_everywhere(entry, src))
        assert outcome.ok and len(outcome.confirmed) == 1, outcome
        for route in ("w", "f"):
            assert (root / route / "deploy" / "app.whl").read_bytes() == src.read_bytes()

        wsgi.manager.stop()  # the deployer stops first, then the member leaves
        assert wsgi.manager.companion is None
        assert wait_for(lambda: farm_f.channel.members == [], 10)
    finally:
        wsgi.manager.stop()
        interface.manager.stop()


def test_a_failing_deployer_stops_the_member_it_came_with(root: Path) -> None:
    port = random_mcast_port()
    config = node_config(port, root, "w")
    (root / "w").mkdir()
    (root / "w" / "deploy").write_text("a file where deploy_dir should be")
    wsgi = ClusterSessionWSGIMiddleware(plain_wsgi_app, config=config)
    try:
        with pytest.raises(OSError):
            wsgi.manager.start()
        assert not wsgi.manager.running and wsgi.manager.companion is None
    finally:
        wsgi.manager.stop()


def test_flask_and_django_gunicorn_nodes_deploy_what_the_command_sends(root: Path) -> None:
    cluster = Cluster()
    src = root / "site.tar"
    src.write_bytes(os.urandom(4 * 1024 * 1024))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()

    def settings(route: str) -> dict[str, str]:
        return {
            "DEPLOYER__DEPLOY_DIR": str(root / route / "deploy"),
            "DEPLOYER__TEMP_DIR": str(root / route / "tmp"),
        }

    with running() as servers:
        for route, app in (("fl", FLASK), ("dj", DJANGO)):
            servers.start(gunicorn(route, app, cluster.env(route, **settings(route)), hooks=True))
        tool_env = cluster.env("tool")
        argv = [sys.executable, "-m", "clustersession", "farm", "--min-members", "2",
                "--wait", "30", "--timeout", "60"]  # fmt: skip
        done = subprocess.run(
            [*argv, "deploy", str(src)], cwd=ROOT, env=tool_env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        for route in ("fl", "dj"):
            path = root / route / "deploy" / "site.tar"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        gone = subprocess.run(
            [*argv, "undeploy", "site.tar"], cwd=ROOT, env=tool_env, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert gone.returncode == 0, gone.stderr
        assert not any((root / r / "deploy" / "site.tar").exists() for r in ("fl", "dj"))
