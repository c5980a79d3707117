"""Cluster nodes as real processes inside namespace hosts, with their output collected."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..support.loopback import SECRET
from ..support.polling import wait_for
from .network import Host, Network


class ChannelNode:
    """``python -m clustersession.channel --json`` on one host; its events, timestamped."""

    def __init__(self, network: Network, host: Host, *, load: int = 0, **env: str) -> None:
        self.host = host
        base = {
            "CLUSTERSESSION_SECRET": SECRET,
            "CLUSTERSESSION_DISTRIBUTABLE": "true",
            "CLUSTERSESSION_JVM_ROUTE": host.name,
        }
        base.update(env)
        self.process = network.run(
            host,
            [
                sys.executable,
                "-m",
                "clustersession.channel",
                "--json",
                "--log-level",
                "WARNING",
                "--load",
                str(load),
            ],
            env=base,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            event["seen"] = time.time()
            self.events.append(event)

    @property
    def member_id(self) -> str | None:
        """This node's member id, once it is ready."""
        for event in self.events:
            if event["event"] == "ready":
                return str(event["member"]["id"])
        return None

    def members(self) -> set[str]:
        """Member ids this node currently lists (from its added/removed events)."""
        current: set[str] = set()
        for event in list(self.events):
            if event["event"] == "added":
                current.add(event["member"]["id"])
            elif event["event"] == "removed":
                current.discard(event["member"]["id"])
        return current

    def removals(self, member_id: str) -> list[dict[str, Any]]:
        """The removed events about ``member_id``."""
        return [
            e
            for e in list(self.events)
            if e["event"] == "removed" and e["member"]["id"] == member_id
        ]

    def wait(self, predicate: Callable[[ChannelNode], bool], timeout: float) -> bool:
        """Poll ``predicate(self)`` until true or the deadline passes."""
        return wait_for(lambda: predicate(self), timeout)


def start_nodes(network: Network, *, load: int = 0, **env: str) -> list[ChannelNode]:
    """One channel node per host, all ready (each sending ``load`` messages/s)."""
    nodes = [ChannelNode(network, host, load=load, **env) for host in network.hosts]
    for node in nodes:
        assert node.wait(lambda n: n.member_id is not None, 20), f"{node.host.name} never started"
    return nodes


def all_see_each_other(nodes: list[ChannelNode]) -> bool:
    """Whether every node lists every other node."""
    ids = {n.member_id for n in nodes}
    return all(n.members() == ids - {n.member_id} for n in nodes)
