"""``BackgroundTasks``: the one owner of a component's background tasks.

Every task is named, kept until it ends (so it is never garbage-collected while
running), logged if it fails, and cancelled by :meth:`BackgroundTasks.cancel_all`
on stop. Components spawn through it instead of ``loop.create_task``, so no task
outlives the channel or manager that started it.

:func:`cancel_and_wait` is the one way a stop cancels tasks: bounded, and a cancel
that a task lost is repeated. On Python 3.11, ``asyncio.wait_for`` drops a cancel
that arrives in the loop iteration its awaitable completes in, so a cancelled
loop can carry on; awaiting it unboundedly made a node's stop hang (issue 12).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

STOP_TIMEOUT = 5.0  # seconds a stop gives cancelled tasks to end, at most
RECANCEL = 0.5  # seconds after which a task still running is cancelled again


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[Any]],
    *,
    timeout: float = STOP_TIMEOUT,
    logger: logging.Logger | None = None,
) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait until they end, at most ``timeout`` seconds.

    A task still running after :data:`RECANCEL` seconds is cancelled again (it may
    have lost the first cancel). Returns the tasks that outlived ``timeout``
    (logged on ``logger``). The caller's own cancellation is never swallowed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL, remaining))
        for task in pending:
            task.cancel()
    if pending and logger is not None:
        names = ", ".join(sorted(t.get_name() for t in pending))
        logger.warning("tasks still running %.1f s after their cancel: %s", timeout, names)
    for task in tasks:  # retrieved, so that asyncio does not report them at collection
        if task.done() and not task.cancelled():
            task.exception()
    return pending


class BackgroundTasks:
    """Tasks started by one component; failures go to ``logger``."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run ``work`` in a task named ``name``, kept until it ends."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._logger.error(
                "background task %s failed", task.get_name(), exc_info=task.exception()
            )

    async def wait(self, timeout: float) -> None:
        """Give the running tasks up to ``timeout`` seconds to finish."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def cancel_all(self, timeout: float = STOP_TIMEOUT) -> None:
        """Cancel every task and wait until each has ended, at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:  # a task may spawn another while it is being cancelled
            tasks = list(self._tasks)
            left = await cancel_and_wait(
                tasks, timeout=max(deadline - loop.time(), 0.0), logger=self._logger
            )
            self._tasks.difference_update(tasks)
            if left:
                return  # logged: a stop must end (they are dropped, not awaited)
