"""``BackgroundTasks``: the one owner of a component's background tasks.

Every task is named, kept until it ends (so it is never garbage-collected while
running), logged if it fails, and cancelled by :meth:`BackgroundTasks.cancel_all`
on stop. Components spawn through it instead of ``loop.create_task``, so no task
outlives the channel or manager that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


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

    async def cancel_all(self) -> None:
        """Cancel every task and wait until each has ended."""
        while self._tasks:  # a task may spawn another while it is being cancelled
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                self._tasks.discard(task)
