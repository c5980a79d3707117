"""Several hosts on one machine: network namespaces on a bridge (the project's harness).

Layout (nothing is created in the root namespace but names under /run/netns)::

    <prefix>-sw     a bridge br0 (multicast flooded: no IGMP querier here)
    <prefix>-lb     eth0 <subnet>.10   (a load balancer host, optional)
    <prefix>-nodeK  eth0 <subnet>.(10+K), route 224.0.0.0/4 dev eth0

Safety: test addresses are only ever contacted from inside these namespaces. As a
net, ``ip route replace unreachable <subnet>.0/24`` is added in the root namespace
first (left in place: it is idempotent and harmless), so a mistake fails with "No
route to host" instead of a packet leaving the machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger("clustersession.tests.network")


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or ``None`` if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "the 'ip' command is missing: apt-get install iproute2"
    probe = f"csprobe{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", probe], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        return f"ip netns add failed: {exc.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def ip(*args: str) -> None:
    """Run ``ip ARGS``, raising with its message on failure."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass
class Host:
    """One namespace host."""

    name: str
    netns: str
    address: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


class Network:
    """``with Network(3) as net:`` creates the hosts; leaving removes all of it."""

    def __init__(self, hosts: int = 3, *, subnet: str = "10.77.0", lb: bool = False) -> None:
        self.prefix = f"cs{os.getpid()}x{time.monotonic_ns() % 100000}"
        self.subnet = subnet
        self.switch = f"{self.prefix}-sw"
        self.hosts = [
            Host(f"node{i}", f"{self.prefix}-node{i}", f"{subnet}.{10 + i}")
            for i in range(1, hosts + 1)
        ]
        self.lb = Host("lb", f"{self.prefix}-lb", f"{subnet}.10") if lb else None

    @property
    def all_hosts(self) -> list[Host]:
        """Every host, the balancer included."""
        return [*self.hosts, *([self.lb] if self.lb else [])]

    def __enter__(self) -> Network:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        """Create the switch and the hosts (after removing what dead runs left behind)."""
        reap_leftovers()
        ip("route", "replace", "unreachable", f"{self.subnet}.0/24")
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
        ip("-n", self.switch, "link", "set", "br0", "up")
        hosts_file = self._hosts_file()
        for host in self.all_hosts:
            self._attach(host, hosts_file)

    def _hosts_file(self) -> str:
        hosts_file = "".join(f"{h.address} {h.name}\n" for h in self.all_hosts)
        return hosts_file + "".join(f"{h.address} cluster\n" for h in self.hosts)

    def _attach(self, host: Host, hosts_file: str) -> None:
        port = f"p-{host.name}"
        ip("netns", "add", host.netns)
        ip("-n", host.netns, "link", "set", "lo", "up")
        ip("link", "add", "eth0", "netns", host.netns, "type", "veth", "peer", "name", port,
           "netns", self.switch)  # fmt: skip
        ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.netns, "link", "set", "eth0", "up")
        ip("-n", host.netns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        etc = Path("/etc/netns") / host.netns
        etc.mkdir(parents=True, exist_ok=True)
        # `ip netns exec` bind-mounts this over /etc/hosts: peers by name, and
        # "cluster" resolving to every node (the DNS-membership case).
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{hosts_file}")

    def down(self) -> None:
        """Kill every process in the hosts, delete the namespaces and their files."""
        names = [h.netns for h in self.all_hosts] + [self.switch]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for netns in names:
                for pid in self._pids(netns):
                    _kill(pid, sig)
            if sig == signal.SIGTERM:
                self._wait_empty(names, 3.0)
        for host in self.all_hosts:
            for process in host.processes:
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
        for netns in names:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / netns, ignore_errors=True)

    @staticmethod
    def _pids(netns: str) -> list[int]:
        result = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
        return [int(p) for p in result.stdout.split()]

    def _wait_empty(self, names: Sequence[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(self._pids(n) for n in names):
            time.sleep(0.05)

    # -- running things ----------------------------------------------------------

    def run(
        self,
        host: Host,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdout: IO[Any] | int | None = subprocess.PIPE,
        stderr: IO[Any] | int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``host`` (its own process group), tracked for cleanup."""
        full_env = {**os.environ, **(env or {})}
        process = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, *argv],
            env=full_env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        host.processes.append(process)
        return process

    def run_python(self, host: Host, code: str, timeout: float = 30.0) -> str:
        """Run a Python snippet inside ``host`` to completion; return its stdout."""
        import sys

        result = subprocess.run(
            ["ip", "netns", "exec", host.netns, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"in {host.name}: {result.stderr.strip()}")
        return result.stdout

    def kill_host(self, host: Host, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to every process of ``host``."""
        for pid in self._pids(host.netns):
            _kill(pid, sig)

    def link_down(self, host: Host) -> None:
        """Pull the host's cable: nothing reaches it, nothing leaves it, no FIN is sent."""
        ip("-n", self.switch, "link", "set", f"p-{host.name}", "down")

    def link_up(self, host: Host) -> None:
        """Plug the cable back in (and forget failed neighbour entries at once)."""
        ip("-n", self.switch, "link", "set", f"p-{host.name}", "up")
        for other in self.all_hosts:
            subprocess.run(["ip", "-n", other.netns, "neigh", "flush", "all"], capture_output=True)


def reap_leftovers() -> None:
    """Delete the namespaces of runs whose process is gone (a run killed mid-test).

    Names are ``cs<pid>x<n>-...``; a live run's are left alone.
    """
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.match(r"cs(\d+)x\d+-", name)
        if match is None or Path(f"/proc/{match[1]}").exists():
            continue
        for pid in Network._pids(name):
            _kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
