"""A whole-farm restart keeps sessions: ``manager.snapshot_path`` under real uvicorn nodes.

Three nodes on loopback (tests/support/servers.py), each with its own snapshot
file. Stopped gracefully and started again, every session is still there; killed
all at once (SIGKILL), at most ``snapshot_interval`` (plus the time to write the
file) of writes is lost.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ..support.polling import wait_for
from ..support.servers import Cluster, Server, Servers, running, start_uvicorn_nodes

pytestmark = pytest.mark.network

SYNC = "6"  # a write is answered once every member has it


def start_farm(
    servers: Servers, cluster: Cluster, folder: Path, interval: float, tag: str
) -> list[Server]:
    envs = {
        f"s{i}-{tag}": cluster.env(
            f"s{i}",
            CHANNEL_SEND_OPTIONS=SYNC,
            MANAGER__SNAPSHOT_PATH=str(folder / f"s{i}.snapshot"),
            MANAGER__SNAPSHOT_INTERVAL=str(interval),
        )
        for i in range(3)
    }
    return start_uvicorn_nodes(servers, envs)


def read(node: Server, cookie: str) -> object:
    return node.request("GET", "/", cookie).json()


def test_a_graceful_restart_of_every_node_keeps_every_session(tmp_path: Path) -> None:
    cluster = Cluster()
    with running() as servers:
        nodes = start_farm(servers, cluster, tmp_path, 60.0, "first")
        written = {}
        for i in range(30):
            reply = nodes[i % 3].request("POST", "/update", json_body={"n": i})
            assert reply.cookie is not None, reply.text
            written[reply.cookie] = {"n": i}
        for node in nodes:  # the whole farm goes down (a full redeploy)
            assert node.terminate()
        for node in nodes:
            assert node.wait_exit() in node.clean_statuses, node.output()
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"s{i}.snapshot" for i in range(3)]

        again = start_farm(servers, cluster, tmp_path, 60.0, "again")
        for node in again:
            missing = {c: v for c, v in written.items() if read(node, c) != v}
            assert not missing, f"{node.name} lost {len(missing)} of {len(written)}"


def test_a_crash_of_every_node_loses_at_most_the_snapshot_interval(tmp_path: Path) -> None:
    interval = 1.0
    slack = 1.0  # the periodic write itself (encode, fsync, rename) on a busy machine
    cluster = Cluster()
    with running() as servers:
        nodes = start_farm(servers, cluster, tmp_path, interval, "first")
        acked: list[tuple[float, str, int]] = []
        end = time.monotonic() + 4 * interval

        def write() -> bool:
            i = len(acked)
            reply = nodes[i % 3].request("POST", "/update", json_body={"n": i})
            assert reply.cookie is not None, reply.text
            acked.append((time.monotonic(), reply.cookie, i))
            return time.monotonic() >= end

        assert wait_for(write, 60, interval=0.01)
        crashed_at = time.monotonic()
        for node in nodes:
            node.kill()
        # (A node killed mid-write leaves its temporary file; the last snapshot is whole.)
        assert all((tmp_path / f"s{i}.snapshot").exists() for i in range(3))

        again = start_farm(servers, cluster, tmp_path, interval, "again")
        # What the killed writers left is removed when the new ones start.
        assert wait_for(lambda: not list(tmp_path.glob("*.tmp-*")), 10, 0.1)
        must_survive = [(t, c, i) for t, c, i in acked if t <= crashed_at - interval - slack]
        assert must_survive, "the writer ran too briefly to test anything"

        def lost_on(node: Server) -> list[int]:
            return [i for _, c, i in must_survive if read(node, c) != {"n": i}]

        # Each node loaded its own file, or took the first node's sessions: anti-entropy
        # then merges what the files held between them; nothing older may be missing.
        assert wait_for(lambda: not any(lost_on(n) for n in again), 20, 0.2), {
            n.name: lost_on(n) for n in again
        }
        kept = [i for _, c, i in acked if read(again[0], c) == {"n": i}]
        print(f"crash of every node: {len(kept)}/{len(acked)} acknowledged writes kept")
