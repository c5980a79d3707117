"""Seeded random schedules for the backup manager: copies agree once the network heals.

Four nodes, one backup; random creations, writes, invalidations and id
regenerations through random nodes (each request fetches, as the middleware
does); random duplicates, reorders, delays and drops. After the network heals
and the nodes resync: every live session has exactly two copies, they agree,
and no invalidated or replaced id is alive anywhere. Without drops, every node
also knows every session (a copy or a proxy entry) and keeps no proxy of a dead id.

``CLUSTERSESSION_SCHEDULES`` (default 40 here) and ``CLUSTERSESSION_SEED`` as in
test_convergence_random.py.
"""

from __future__ import annotations

import os
import random

import pytest

from .memnet import Cluster, create, invalidate, regenerate, write

pytestmark = pytest.mark.anyio

SCHEDULES = int(os.environ.get("CLUSTERSESSION_SCHEDULES", "40"))
FIRST_SEED = int(os.environ.get("CLUSTERSESSION_SEED", "0"))
ROUTES = "abcd"


async def run_schedule(seed: int) -> str:
    rng = random.Random(seed)
    cluster = Cluster(seed, kind="backup", backups=1, state_transfer_timeout=5, rpc_timeout=200)
    network = cluster.network
    network.record_history = False
    options = rng.choice((6, 2, 8))
    try:
        nodes = [await cluster.start(r, map_send_options=options) for r in ROUTES]
        await network.settle()
        lossy = rng.random() < 0.5
        network.drop = rng.choice((0.05, 0.2)) if lossy else 0.0
        network.duplicate = rng.choice((0.0, 0.2))
        network.reorder = rng.choice((0.0, 0.5, 1.0))
        network.delay = rng.choice((0.0, 0.2))
        known: list[str] = []
        retired: set[str] = set()
        for _ in range(rng.randint(10, 40)):
            node = rng.choice(nodes)
            route = node.channel.local.route
            live = [t for t in known if t not in retired]
            roll = rng.random()
            if not live or roll < 0.3:
                token = f"t{rng.getrandbits(40):010x}"
                known.append(token)
                await node.commit([create(token, route, v=rng.randint(0, 9))])
            else:
                token = rng.choice(live)
                await node.fetch(token, None)
                if node.open(token).record is None:
                    continue  # every copy lost on the way: a new session, in real life
                if roll < 0.8:
                    await node.commit([write(token, route, **{rng.choice("xyz"): rng.random()})])
                elif roll < 0.9:
                    retired.add(token)
                    await node.commit([invalidate(token, route)])
                else:
                    retired.add(token)
                    new = f"t{rng.getrandbits(40):010x}"
                    known.append(new)
                    await node.commit([regenerate(token, new, route)])
            if rng.random() < 0.3:
                await network.settle()
        network.drop = network.duplicate = network.reorder = network.delay = 0.0
        for _ in range(3):
            await network.settle()
            for node in nodes:
                for member in node.channel.members:
                    await node.resync(member)
                await network.settle()
                await node.check()
        await network.settle()
        return problems(nodes, retired, check_proxies=not lossy)
    finally:
        await cluster.stop()


def problems(nodes: list, retired: set[str], *, check_proxies: bool) -> str:
    found = []
    tokens = {r.token for n in nodes for r in n.store}
    for token in sorted(tokens):
        copies = [(n.channel.local.route, n.store.get(token)) for n in nodes if token in n.store]
        if len(copies) != 2:
            found.append(f"{token}: {len(copies)} copies on {[c[0] for c in copies]}")
        if len({(r.route, tuple(sorted(r.attributes.items()))) for _, r in copies}) != 1:
            found.append(f"{token}: copies differ")
        if token in retired:
            found.append(f"{token}: retired but alive")
        if check_proxies:
            unknown = [n.channel.local.route for n in nodes if token not in n.store
                       and token not in n.proxies]  # fmt: skip
            if unknown:
                found.append(f"{token}: unknown to {unknown}")
    for node in nodes:
        # Proxy entries are told with unacknowledged messages: with drops one may
        # outlive its id, and the first request for it learns the tombstone (FETCHED).
        stale = retired & set(node.proxies) if check_proxies else set()
        for token in stale:
            found.append(f"{token}: retired but a proxy on {node.channel.local.route}")
    return "; ".join(found)


async def test_random_schedules_converge() -> None:
    failures = []
    for seed in range(FIRST_SEED, FIRST_SEED + SCHEDULES):
        problem = await run_schedule(seed)
        if problem:
            failures.append(f"seed {seed}: {problem}")
    assert not failures, "\n".join(failures[:10])
