"""The chaos scenarios on namespace hosts; each returns a :class:`Figure`.

Every scenario starts its own cluster (:class:`ChaosCluster`: N hosts and a client
host), runs the client (:mod:`bench.chaos.client`) throughout, applies its fault,
stops the client, then measures how long the nodes take to hold identical sessions
and compares every node's sessions with what the client was told was stored.
Durations are parameters: the CI tests run short versions, ``make chaos`` long ones.
"""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from pathlib import Path

from . import faults
from .cluster import RECEIVER_PORTS, ChaosCluster
from .figures import Figure, acknowledged, latency, losses, replaced, story

COMMAND = ".venv/bin/python -m bench.chaos"


def pause(seconds: float) -> None:
    """Let the load run for ``seconds`` (the schedule of a fault, not a synchronisation)."""
    threading.Event().wait(seconds)


def env_for(send_options: int | None, **extra: str) -> dict[str, str]:
    env = dict(extra)
    if send_options is not None:
        env["CLUSTERSESSION_CHANNEL_SEND_OPTIONS"] = str(send_options)
    return env


def mode(send_options: int | None) -> str:
    return f"channel_send_options={send_options or 8}"


def kill_restart(
    hosts: int = 3,
    duration: float = 60,
    gap: tuple[float, float] = (2.0, 5.0),
    seed: int = 1,
    send_options: int | None = None,
) -> Figure:
    """SIGKILL a random node every few seconds (one down at a time; it comes back).

    A session is "lost in flight" when it is missing and its last acknowledged
    write was answered by a node killed less than 1 s later (with asynchronous
    replication that write may not have left the node); any other missing session
    existed on a survivor and counts as lost.
    """
    rng = random.Random(seed)
    kills: list[tuple[float, int]] = []
    with ChaosCluster(hosts, **env_for(send_options)) as cluster:
        nodes = cluster.start()
        client = cluster.start_client(new_every=10, sessions=300)
        end = time.monotonic() + duration
        restart_s = []
        while time.monotonic() < end:
            pause(rng.uniform(*gap))
            victim = rng.randrange(hosts)
            kills.append((time.time(), victim))
            nodes[victim].kill(signal.SIGKILL)
            began = time.monotonic()
            nodes[victim].start()  # answers once its state transfer is done
            restart_s.append(time.monotonic() - began)
        attempts = client.stop()
        convergence = cluster.time_to_converge(120)
        contents = [cluster.contents(n) for n in nodes]
    expected = acknowledged(attempts)
    lost = losses(contents, expected)

    def in_flight(token: str) -> bool:
        _, when, node = expected[token]
        return any(node == k and 0 <= t - when < 1.0 for t, k in kills)

    survivors_lost = [t for t in lost.sessions if not in_flight(t)]
    writes_lost = [t for t in lost.writes if not in_flight(t)]
    figure = Figure(
        scenario="kill",
        fault=f"SIGKILL of a random node every {gap[0]:g}-{gap[1]:g} s for {duration:g} s "
        f"({len(kills)} kills), each restarted at once; {hosts} nodes, {mode(send_options)}",
        load=_load(attempts),
        lost={
            "sessions lost (existed on a survivor)": len(survivors_lost),
            "acknowledged writes lost (not in flight)": len(writes_lost),
        },
        convergence_s=convergence,
        command=COMMAND,
        details={
            "sessions": len(expected),
            "kills": len(kills),
            "sessions replaced by a new one": replaced(attempts),
            "lost in flight with the killed node": len(lost.sessions) - len(survivors_lost),
            "writes lost in flight": len(lost.writes) - len(writes_lost),
            "restart to ready s (max)": round(max(restart_s), 2) if restart_s else None,
            **latency(a for a in attempts if a.ok),
        },
    )
    counted = [*survivors_lost, *writes_lost][:3]
    if counted:
        first = kills[0][0]
        at = [(round(t - first, 2), k) for t, k in kills]
        figure.details["kills (s after the first, node)"] = at
        figure.details["evidence"] = [story(t, expected, contents, attempts) for t in counted]
    if convergence is None:
        figure.problems.append("the nodes never held identical sessions")
    return figure


def partition_heal(
    hosts: int = 3, duration: float = 15, send_options: int | None = None, doomed: int = 5
) -> Figure:
    """Split the hosts in two sides; the client writes to both; heal; measure.

    Before the cut the runner starts ``doomed`` sessions; during it, it invalidates
    them on the first side and writes to them on the second. After healing none may
    be alive anywhere (resurrected), and every acknowledged write must be there.
    """
    with ChaosCluster(hosts, **env_for(send_options)) as cluster:
        nodes = cluster.start()
        hosts_list = cluster.network.hosts
        cut = hosts // 2 + 1
        sides = [hosts_list[:cut], hosts_list[cut:]]
        majority, minority = nodes[0], nodes[cut]
        cookies = []
        for i in range(doomed):
            response = majority.request("POST", "/update", json={"doomed": i})
            cookies.append(response.headers["set-cookie"].split(";")[0].split("=", 1)[1])
        assert cluster.time_to_converge(30) is not None, "the doomed sessions never replicated"
        client = cluster.start_client(new_every=10, sessions=300)
        pause(min(3.0, duration / 5))
        faults.partition(sides)
        cut_at = time.monotonic()
        pause(duration / 2)
        for cookie in cookies:
            majority.request("POST", "/call/invalidate", cookie)
            minority.request("POST", "/update", cookie, json={"zombie": True})
        pause(duration / 2)
        attempts = client.stop()
        faults.heal(hosts_list)
        partitioned_s = time.monotonic() - cut_at
        convergence = cluster.time_to_converge(120)
        contents = [cluster.contents(n) for n in nodes]
    expected = acknowledged(attempts)
    lost = losses(contents, expected)
    tokens = [c.split(".")[0] for c in cookies]
    resurrected = sorted({t for c in contents for t in tokens if t in c})
    figure = Figure(
        scenario="partition",
        fault=f"partition {cut}|{hosts - cut} for {partitioned_s:.0f} s, writes on both sides, "
        f"{doomed} sessions invalidated on one side and written on the other; then heal; "
        f"{mode(send_options)}",
        load=_load(attempts),
        lost={
            "sessions lost": len(lost.sessions),
            "acknowledged writes lost": len(lost.writes),
            "invalidated sessions resurrected": len(resurrected),
        },
        convergence_s=convergence,
        command=COMMAND,
        details={
            "sessions": len(expected),
            "sessions replaced by a new one": replaced(attempts),
            **latency(a for a in attempts if a.ok),
        },
    )
    if convergence is None:
        figure.problems.append("the nodes never held identical sessions after healing")
    return figure


def loss_delay(
    hosts: int = 3, duration: float = 60, percent: int = 5, delay_ms: float = 20,
    send_options: int | None = None,
) -> Figure:  # fmt: skip
    """``percent`` % packet loss on every node's link, and ``delay_ms`` on peer links
    (a delaying proxy: see :mod:`bench.chaos.delay_proxy`), at the seed's timings."""
    with ChaosCluster(hosts, **env_for(send_options)) as cluster:
        node_hosts = cluster.network.hosts
        if delay_ms:
            faults.add_delay(cluster.network, node_hosts, delay_ms, RECEIVER_PORTS)
        nodes = cluster.start()
        faults.add_loss(node_hosts, percent)
        client = cluster.start_client(new_every=10, sessions=300)
        pause(duration)
        attempts = client.stop()
        removed = [
            (s or {}).get("channel", {}).get("members_removed", -1)
            for s in (cluster.state(n) for n in nodes)
        ]
        faults.remove_loss(node_hosts)
        convergence = cluster.time_to_converge(120)
        contents = [cluster.contents(n) for n in nodes]
    expected = acknowledged(attempts)
    lost = losses(contents, expected)
    delay = f" and {delay_ms:g} ms delay on peer TCP links" if delay_ms else ""
    figure = Figure(
        scenario="loss",
        fault=f"{percent} % random packet loss on every node's link{delay} for {duration:g} s; "
        f"membership frequency 500 ms, drop_time 3000 ms (the seed's); {mode(send_options)}",
        load=_load(attempts),
        lost={
            "false member removals": sum(max(r, 0) for r in removed),
            "sessions lost": len(lost.sessions),
            "acknowledged writes lost": len(lost.writes),
        },
        convergence_s=convergence,
        command=COMMAND,
        details={
            "sessions": len(expected),
            "removals per node": removed,
            **latency(a for a in attempts if a.ok),
        },
    )
    if -1 in removed:
        figure.problems.append("a node did not report its channel counters")
    if convergence is None:
        figure.problems.append("the nodes never held identical sessions")
    return figure


def slow_peer(
    hosts: int = 3, stop_s: float = 10, before_s: float = 10, send_options: int | None = None
) -> Figure:
    """SIGSTOP one node for ``stop_s``; the client writes to the others only.

    Reports the latency of those requests before and during the stop.
    """
    with ChaosCluster(hosts, **env_for(send_options)) as cluster:
        nodes = cluster.start()
        client = cluster.start_client(list(range(1, hosts)), new_every=10, sessions=300)
        pause(before_s)
        stopped_at = time.time()
        with cluster.stopped(nodes[0], signal.SIGSTOP, signal.SIGCONT):
            pause(stop_s)
        resumed_at = time.time()
        removed = [
            (cluster.state(n) or {}).get("channel", {}).get("members_removed") for n in nodes
        ]
        pause(5)
        attempts = client.stop()
        convergence = cluster.time_to_converge(120)
        contents = [cluster.contents(n) for n in nodes]
    expected = acknowledged(attempts)
    lost = losses(contents, expected)
    before = latency(a for a in attempts if a.t < stopped_at)
    during = latency(a for a in attempts if stopped_at <= a.t < resumed_at)
    failed = sum(1 for a in attempts if stopped_at <= a.t < resumed_at and not a.ok)
    figure = Figure(
        scenario="slow-peer",
        fault=f"SIGSTOP of one node for {stop_s:g} s (client writes to the other "
        f"{hosts - 1}); {mode(send_options)}",
        load=_load(attempts),
        lost={
            "sessions lost": len(lost.sessions),
            "acknowledged writes lost": len(lost.writes),
            "failed requests to the others during the stop": failed,
        },
        convergence_s=convergence,
        command=COMMAND,
        details={"before": before, "during": during, "members removed per node": removed},
    )
    if convergence is None:
        figure.problems.append("the nodes never held identical sessions after SIGCONT")
    return figure


def flood(hosts: int = 3, limit: int = 3000, duration: float = 30, clients: int = 4) -> Figure:
    """Clients that only start sessions, on every node, past ``max_active_sessions``."""
    env = {"CLUSTERSESSION_MANAGER__MAX_ACTIVE_SESSIONS": str(limit), "TEST_NODE_LOG": "WARNING"}
    with ChaosCluster(hosts, **env) as cluster:
        nodes = cluster.start()
        rss_start = [_rss(n.process.pid if n.process else 0) for n in nodes]
        runs = [cluster.start_client(new_every=1, sessions=10**9) for _ in range(clients)]
        peak = [0] * hosts
        rss_at_limit: list[int] | None = None
        end = time.monotonic() + duration
        while time.monotonic() < end:
            states = [cluster.state(n) for n in nodes]
            counts = [s["sessions"] if s else 0 for s in states]
            peak = [max(p, c) for p, c in zip(peak, counts, strict=True)]
            if rss_at_limit is None and min(counts) >= limit:
                rss_at_limit = [_rss(n.process.pid if n.process else 0) for n in nodes]
            pause(0.5)
        attempts = [a for run in runs for a in run.stop()]
        rss_end = [_rss(n.process.pid if n.process else 0) for n in nodes]
        lines = [_count(n.log, r"refused a new session") for n in nodes]
    created = sum(1 for a in attempts if a.ok)
    refused = sum(1 for a in attempts if not a.ok)
    slack = clients * hosts  # sessions started concurrently are counted when they commit
    over = [p for p in peak if p > limit + slack]
    growth = [
        round((e - s) / 2**20, 1) for s, e in zip(rss_at_limit or rss_end, rss_end, strict=True)
    ]
    figure = Figure(
        scenario="flood",
        fault=f"{clients} clients starting sessions on {hosts} nodes for {duration:g} s, "
        f"max_active_sessions={limit}",
        load=f"{len(attempts)} requests ({created} sessions started, {refused} refused)",
        lost={"nodes over the limit": len(over)},
        convergence_s=None,
        command=COMMAND,
        details={
            "peak sessions per node": peak,
            "refusal log lines per node": lines,
            "RSS MiB at start": [round(r / 2**20, 1) for r in rss_start],
            "RSS MiB at the limit": [round(r / 2**20, 1) for r in rss_at_limit or []],
            "RSS MiB at the end": [round(r / 2**20, 1) for r in rss_end],
            "RSS growth MiB after the limit": growth,
        },
    )
    if rss_at_limit is None:
        figure.problems.append("the flood never reached the limit")
    allowed = duration / 5 + 2  # one line per 5 s (RateLimitedLog's default) and a margin
    if max(lines) > allowed:
        figure.problems.append(f"refusals logged {max(lines)} times (> {allowed:g})")
    return figure


def _load(attempts: list) -> str:  # type: ignore[type-arg]
    ok = sum(1 for a in attempts if a.ok)
    span = (attempts[-1].t - attempts[0].t) if len(attempts) > 1 else 0.0
    rate = ok / span if span else 0.0
    return f"1 client, {ok} acknowledged writes ({rate:.0f}/s), {len(attempts) - ok} failed tries"


def _rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match[1]) * 1024 if match else 0


def _count(path: Path, pattern: str) -> int:
    try:
        return len(re.findall(pattern, path.read_text()))
    except OSError:
        return 0
