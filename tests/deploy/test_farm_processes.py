"""The farm deployer between real processes on loopback, driven by the ``clustersession`` command.

One cluster serves the whole module (starting it is most of the cost): three
uvicorn nodes of two worker processes each (six members; the workers of a node
share its ``deploy_dir``, ``temp_dir`` and ``on_deploy`` log, as the workers of
one host would), node n0 watching a directory. Each test uses artifact names of
its own and leaves the cluster as it found it (a killed node is started again),
so they stay independent. Every process and the module's directory go at the end,
even on failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from clustersession.channel import GroupChannel
from clustersession.channel.application import nodes
from clustersession.config import ClusterConfig
from clustersession.deploy.endpoint import FarmEndpoint
from clustersession.deploy.fanout import ask_all
from clustersession.deploy.store import PART_SUFFIX
from clustersession.deploy.wire import Kind, Message
from tests.support.polling import wait_for
from tests.support.servers import ROOT, Cluster, Server, Servers, running, uvicorn

pytestmark = pytest.mark.network

ROUTES = ("n0", "n1", "n2")
WORKERS = 2
MEMBERS = len(ROUTES) * WORKERS
MiB = 1024 * 1024


@dataclass
class Farm:
    """The module's cluster: its servers (by route), directories and the command."""

    cluster: Cluster
    servers: Servers
    root: Path
    nodes: dict[str, Server] = field(default_factory=dict)

    def deploy_dir(self, route: str) -> Path:
        return self.root / route / "deploy"

    def temp_dir(self, route: str) -> Path:
        return self.root / route / "tmp"

    def hook_log(self, route: str) -> Path:
        return self.root / route / "hooks.log"

    @property
    def watch_dir(self) -> Path:
        return self.root / "n0" / "watch"

    def start(self, route: str, name: str) -> Server:
        """Start (or start again) node ``route``; returns once its workers are members."""
        log = shlex.quote(str(self.hook_log(route)))
        settings = {
            "DEPLOYER__DEPLOY_DIR": str(self.deploy_dir(route)),
            "DEPLOYER__TEMP_DIR": str(self.temp_dir(route)),
            # The hook gets the artifact's path as its last argument ($0 of sh -c).
            "DEPLOYER__ON_DEPLOY": shlex.join(["sh", "-c", f'echo "deploy $0" >> {log}']),
            "DEPLOYER__ON_UNDEPLOY": shlex.join(["sh", "-c", f'echo "undeploy $0" >> {log}']),
        }
        if route == "n0":
            settings |= {
                "DEPLOYER__WATCH_DIR": str(self.watch_dir),
                "DEPLOYER__WATCH_ENABLED": "true",
                "DEPLOYER__PROCESS_DEPLOY_FREQUENCY": "1",
            }
        server = self.servers.start(
            uvicorn(name, self.cluster.env(route, **settings), workers=WORKERS)
        )
        self.nodes[route] = server
        return server

    def wait_all_members(self, timeout: float = 30.0) -> None:
        """Until the command finds every worker of every node (and only those)."""
        assert wait_for(lambda: self.members_seen() == MEMBERS, timeout, 0.2), (
            f"the command never found {MEMBERS} members"
        )

    def members_seen(self) -> int:
        listed = self.command("list", "--json", wait=1.0, min_members=MEMBERS)
        return len(json.loads(listed.stdout)) if listed.returncode == 0 else -1

    def command(
        self,
        *args: str,
        wait: float = 20.0,
        min_members: int = MEMBERS,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``clustersession farm ... ARGS`` as a tool member of this cluster."""
        argv = [sys.executable, "-m", "clustersession", "farm", "--min-members",
                str(min_members), "--wait", str(wait), "--timeout", "60", *args]  # fmt: skip
        return subprocess.run(
            argv,
            cwd=ROOT,
            env=env if env is not None else self.cluster.env("tool"),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def artifact(self, name: str, size: int) -> tuple[Path, str]:
        """A random file of ``size`` bytes in the module's directory, and its SHA-256."""
        path = self.root / "src" / name
        path.parent.mkdir(exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        return path, hashlib.sha256(data).hexdigest()


def digest_of(path: Path) -> str | None:
    """SHA-256 of the file at ``path``, None if there is none."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def parts(directory: Path) -> list[Path]:
    """The deployer's partial files in ``directory`` (litter once nobody writes them)."""
    return sorted(directory.glob(f"*{PART_SUFFIX}"))


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    root = Path(tempfile.mkdtemp(prefix="clustersession-farm-"))
    try:
        with running() as servers:
            made = Farm(Cluster(), servers, root)
            made.watch_dir.mkdir(parents=True)
            for route in ROUTES:
                made.start(route, route)
            made.wait_all_members()
            yield made
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_deploy_list_undeploy_on_three_nodes(farm: Farm) -> None:
    src, digest = farm.artifact("bundle.tar", 20 * MiB)

    done = farm.command("deploy", str(src), "--name", "bundle.tar")
    assert done.returncode == 0, done.stderr
    for route in ROUTES:
        assert digest_of(farm.deploy_dir(route) / "bundle.tar") == digest

    listed = farm.command("list", "--json")
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert len(doc) == MEMBERS
    assert all(
        [a["sha256"] for a in m["artifacts"] if a["name"] == "bundle.tar"] == [digest] for m in doc
    )

    gone = farm.command("undeploy", "bundle.tar")
    assert gone.returncode == 0, gone.stderr
    assert not any((farm.deploy_dir(r) / "bundle.tar").exists() for r in ROUTES)


def test_a_node_killed_mid_transfer_catches_up_when_restarted(farm: Farm) -> None:
    """SIGKILL n2 while it writes a 50 MiB artifact: n0 and n1 complete, the command
    names n2's members, and n2 started again fetches the file and clears its litter."""
    name = "big.bin"
    src, digest = farm.artifact(name, 50 * MiB)
    victim = farm.nodes["n2"]
    victim_tmp, victim_deploy = farm.temp_dir("n2"), farm.deploy_dir("n2")
    command = subprocess.Popen(
        [sys.executable, "-m", "clustersession", "farm", "--min-members", str(MEMBERS),
         "--wait", "20", "--timeout", "60", "deploy", str(src)],
        cwd=ROOT, env=farm.cluster.env("tool"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        # Mid-transfer: n2's partial file has bytes and the artifact is not in place.
        def writing() -> bool:
            return any(p.stat().st_size > 0 for p in parts(victim_tmp) if p.exists())

        assert wait_for(writing, 30, 0.005), "n2 never started receiving"
        victim.kill()
        assert not (victim_deploy / name).exists(), "the kill landed after n2 had the file"
        assert parts(victim_tmp), "no partial file left: the kill was not mid-transfer"
        out, err = command.communicate(timeout=90)
    finally:
        if command.poll() is None:
            command.kill()
            command.communicate()

    # The others completed; the command fails, naming the members that did not confirm.
    assert command.returncode == 1, (out, err)
    failed = [line for line in err.splitlines() if "NOT deployed" in line]
    assert len(failed) == WORKERS and all(line.startswith("n2@") for line in failed), err
    assert f"{WORKERS} member(s) did not confirm" in err, err
    for route in ("n0", "n1"):
        assert digest_of(farm.deploy_dir(route) / name) == digest
    assert not (victim_deploy / name).exists()

    restarted = farm.start("n2", "n2-restarted")
    restarted.wait_healthy()
    assert wait_for(lambda: digest_of(victim_deploy / name) == digest, 30, 0.05), restarted.output()
    assert parts(victim_tmp) == []
    farm.wait_all_members()
    gone = farm.command("undeploy", name)
    assert gone.returncode == 0, gone.stderr


def test_watch_mode_deploys_a_dropped_file_and_undeploys_a_removed_one(farm: Farm) -> None:
    data = os.urandom(3 * MiB)
    digest = hashlib.sha256(data).hexdigest()
    dropped = farm.watch_dir / "flags.json"
    dropped.write_bytes(data)
    assert wait_for(
        lambda: all(digest_of(farm.deploy_dir(r) / "flags.json") == digest for r in ROUTES), 20
    ), "the dropped file did not reach every node"

    dropped.unlink()
    assert wait_for(
        lambda: not any((farm.deploy_dir(r) / "flags.json").exists() for r in ROUTES), 20
    ), "the removed file was not undeployed everywhere"


def test_on_deploy_and_on_undeploy_run_once_per_host_with_two_workers(farm: Farm) -> None:
    name = "hooked.whl"
    src, _ = farm.artifact(name, 1 * MiB)

    done = farm.command("deploy", str(src))
    assert done.returncode == 0, done.stderr
    # Every worker confirmed: per node, one wrote and the other found it there.
    for route in ROUTES:
        answers = [line for line in done.stdout.splitlines() if line.startswith(f"{route}@")]
        assert sorted(a.rsplit(": ", 1)[1] for a in answers) == ["already deployed", "deployed"]

    gone = farm.command("undeploy", name)
    assert gone.returncode == 0, gone.stderr
    for route in ROUTES:
        lines = farm.hook_log(route).read_text().splitlines()
        target = farm.deploy_dir(route) / name
        assert [line for line in lines if line.endswith(f"/{name}")] == [
            f"deploy {target}",
            f"undeploy {target}",
        ]


@pytest.mark.parametrize(
    ("secret", "says"),
    [(None, "set secret"), ("not-the-cluster-secret-42", "is this the cluster's secret")],
    ids=["no-secret", "wrong-secret"],
)
def test_a_tool_without_the_secret_deploys_nothing(
    farm: Farm, secret: str | None, says: str
) -> None:
    name = f"intruder-{'none' if secret is None else 'wrong'}.bin"
    src, _ = farm.artifact(name, 64 * 1024)
    env = farm.cluster.env("tool")
    if secret is None:
        del env["CLUSTERSESSION_SECRET"]
    else:
        env["CLUSTERSESSION_SECRET"] = secret

    refused = farm.command("deploy", str(src), wait=2.0, env=env)
    assert refused.returncode != 0
    assert says in refused.stderr.lower(), refused.stderr
    assert not any((farm.deploy_dir(r) / name).exists() for r in ROUTES)


@pytest.mark.parametrize("hostile", ["../x", "/tmp/clustersession-farm-x", "a/b", ".hidden"])
def test_a_hostile_name_is_refused_by_the_command(farm: Farm, hostile: str) -> None:
    src, _ = farm.artifact("innocent.bin", 1024)
    for args in (("deploy", str(src), "--name", hostile), ("undeploy", hostile)):
        refused = farm.command(*args)
        assert refused.returncode == 2, refused
        assert "refused" in refused.stderr, refused.stderr
    assert not Path("/tmp/clustersession-farm-x").exists()


def test_a_hostile_name_is_refused_by_every_node(farm: Farm) -> None:
    """A member that skips the command's check (same secret, hand-made messages)."""
    config = ClusterConfig.from_env(farm.cluster.env("tool"))
    outside = farm.root / "x"  # where "../x" leads from n0's deploy_dir's parent's child

    async def announce() -> list[tuple[bool, str]]:
        channel = GroupChannel(config, tool=True)
        endpoint = FarmEndpoint(channel, handler=None, offers=lambda digest: _nothing())
        await channel.start()
        try:
            for _ in range(400):  # membership settles within a few heartbeats
                if len(nodes(channel.members)) >= MEMBERS:
                    break
                await asyncio.sleep(0.05)
            members = nodes(channel.members)
            assert len(members) == MEMBERS
            results: list[tuple[bool, str]] = []
            for hostile in ("../x", "../../x", str(outside)):
                for make in (
                    partial(Message, Kind.ANNOUNCE, name=hostile, size=4, digest="0" * 64, at=1.0),
                    partial(Message, Kind.UNDEPLOY, name=hostile, at=1.0),
                ):
                    outcome = await ask_all(endpoint, members, make, 10.0)
                    results += [(True, d) for d in outcome.details.values()]
                    results += [(False, why) for why in outcome.failed.values()]
            return results
        finally:
            await endpoint.stop()
            await channel.stop()

    results = asyncio.run(announce())
    assert len(results) == 3 * 2 * MEMBERS
    assert all(not ok and why.startswith("refused:") for ok, why in results), results
    assert not outside.exists()
    for route in ROUTES:
        assert not (farm.root / route / "x").exists()


async def _nothing() -> None:
    return None


def test_the_command_names_a_silent_member_promptly(farm: Farm) -> None:
    """A member of the cluster without a farm deployer (``clustersession members``, a
    plain channel member) never answers: the command fails it after --reply-timeout, not
    after its --timeout, and the nodes still deploy. Last in the module: it adds a member."""
    mute = subprocess.Popen(
        [sys.executable, "-m", "clustersession", "members"],
        cwd=ROOT, env=farm.cluster.env("mute"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        src, digest = farm.artifact("quiet.bin", 64 * 1024)
        argv = [sys.executable, "-m", "clustersession", "farm", "--min-members",
                str(MEMBERS + 1), "--wait", "20", "--timeout", "600", "--reply-timeout", "5",
                "deploy", str(src)]  # fmt: skip
        done = subprocess.run(
            argv, cwd=ROOT, env=farm.cluster.env("tool"), capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 1, done
        failed = [line for line in done.stderr.splitlines() if "NOT deployed" in line]
        assert len(failed) == 1 and failed[0].startswith("mute@"), done.stderr
        assert "silent" in failed[0], done.stderr
        assert "1 member(s) did not confirm" in done.stderr
        for route in ROUTES:
            assert digest_of(farm.deploy_dir(route) / "quiet.bin") == digest
    finally:
        mute.send_signal(signal.SIGINT)  # it leaves the group cleanly
        try:
            mute.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            mute.kill()
            mute.communicate()
