"""Network faults inside the namespace hosts, with nftables (this kernel has no netem).

Each fault is a table of its own in the node hosts' namespaces, so it is added and
removed without touching the others:

* loss: ``numgen random mod 100 < P drop`` on everything a node sends on eth0
  (peer traffic, heartbeats, answers to the client);
* partition: a node drops what it sends to, or receives from, the other side;
* delay: the node's connections to peers' receivers are redirected to a local
  :mod:`bench.chaos.delay_proxy`, which holds each chunk before passing it on.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence

from tests.cluster.network import Host, Network

from .delay_proxy import MARK


def available() -> str | None:
    """Why nftables cannot be used here, or ``None``."""
    if shutil.which("nft") is None:
        return "the 'nft' command is missing: apt-get install nftables"
    return None


def nft(host: Host, script: str) -> None:
    """Apply an nft ``script`` inside ``host``'s namespace."""
    result = subprocess.run(
        ["ip", "netns", "exec", host.netns, "nft", "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"nft in {host.name}: {result.stderr.strip()}\n{script}")


def drop_table(host: Host, table: str) -> None:
    """Remove fault ``table`` from ``host`` (nothing if it is not there)."""
    subprocess.run(
        ["ip", "netns", "exec", host.netns, "nft", "delete", "table", "inet", table],
        capture_output=True,
    )


def add_loss(hosts: Sequence[Host], percent: int) -> None:
    """Drop ``percent`` % of the packets each of ``hosts`` sends on eth0, at random."""
    for host in hosts:
        nft(
            host,
            f"""
table inet chaos_loss {{
  chain out {{
    type filter hook output priority 0;
    oifname "eth0" numgen random mod 100 < {percent} drop
  }}
}}
""",
        )


def remove_loss(hosts: Sequence[Host]) -> None:
    for host in hosts:
        drop_table(host, "chaos_loss")


def partition(sides: Sequence[Sequence[Host]]) -> None:
    """Cut every link between hosts on different ``sides`` (other hosts keep every link)."""
    for index, side in enumerate(sides):
        others = [h.address for i, s in enumerate(sides) if i != index for h in s]
        addresses = ", ".join(others)
        for host in side:
            nft(
                host,
                f"""
table inet chaos_partition {{
  chain out {{
    type filter hook output priority 0;
    ip daddr {{ {addresses} }} drop
  }}
  chain in {{
    type filter hook input priority 0;
    ip saddr {{ {addresses} }} drop
  }}
}}
""",
            )


def heal(hosts: Sequence[Host]) -> None:
    """Undo :func:`partition`."""
    for host in hosts:
        drop_table(host, "chaos_partition")


def add_delay(network: Network, hosts: Sequence[Host], delay_ms: float, ports: str) -> None:
    """Delay the connections ``hosts`` open to TCP ``ports`` (e.g. ``"4000-4099"``) by
    ``delay_ms`` each way, through a :mod:`bench.chaos.delay_proxy` in each host.

    Only connections opened after this are delayed: call it before the nodes start.
    """
    proxy_port = 4999
    for host in hosts:
        network.run(
            host,
            [
                sys.executable,
                "-m",
                "bench.chaos.delay_proxy",
                "--port",
                str(proxy_port),
                "--delay-ms",
                str(delay_ms),
            ],
            stdout=subprocess.DEVNULL,
        )
        nft(
            host,
            f"""
table inet chaos_delay {{
  chain out {{
    type nat hook output priority -100;
    meta mark != {MARK} oifname "eth0" tcp dport {ports} redirect to :{proxy_port}
  }}
}}
""",
        )
