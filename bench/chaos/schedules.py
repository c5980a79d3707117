"""Seeded schedules on the in-memory network, many more than the tests run.

Plays :func:`tests.sessions.test_convergence_random.run_schedule` (three nodes,
random writes, invalidations and id changes under random drops, duplicates,
reorders, delays and partitions, then heal and anti-entropy) for ``count`` seeds.
The library's warnings (every send a fault drops) are silenced while they play.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tests.sessions.test_convergence_random import run_schedule

from .figures import Figure


async def _play(first: int, count: int) -> list[str]:
    failures = []
    for seed in range(first, first + count):
        problems = await run_schedule(seed)
        if problems:
            failures.append(f"seed {seed}: {problems}")
    return failures


def schedules(count: int = 5000, first: int = 0) -> Figure:
    """Play ``count`` schedules from seed ``first``; every one must converge."""
    began = time.monotonic()
    logging.disable(logging.WARNING)
    try:
        failures = asyncio.run(_play(first, count))
    finally:
        logging.disable(logging.NOTSET)
    took = time.monotonic() - began
    return Figure(
        scenario="schedules",
        fault=f"{count} seeded schedules (seeds {first}-{first + count - 1}) on the in-memory "
        "network: drops, duplicates, reorders, delays, partitions",
        load="5-25 random requests per schedule on 3 nodes (writes, deletes, "
        "invalidations, id changes)",
        lost={"schedules that diverged or resurrected an id": len(failures)},
        convergence_s=None,
        command=f".venv/bin/python -m bench.chaos --only schedules --schedules {count}",
        details={"seconds": round(took, 1), "failures": failures[:5]},
    )
