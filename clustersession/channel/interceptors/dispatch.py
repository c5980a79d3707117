"""The async dispatch queue (Tomcat's MessageDispatchInterceptor).

A send with the ASYNCHRONOUS bit returns as soon as the message is queued; one
worker task sends queued messages in order, so per-destination order holds. The
queue is bounded by the bytes it holds; when full, ``always_send`` sends on the
caller's task instead (back-pressure), else the send fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from ...config.sections import DispatchConfig
from ..errors import ChannelError
from ..member import Member
from ..options import ASYNCHRONOUS
from ..ratelimit import RateLimitedLog
from ..tasks import cancel_and_wait
from .base import Interceptor

logger = logging.getLogger("clustersession.channel")

_Item = tuple[Sequence[Member], bytes, int]


class QueueFullError(Exception):
    """The dispatch queue holds ``max_queue_size`` bytes already."""


class DispatchInterceptor(Interceptor):
    """Queues asynchronous sends and sends them from a worker task."""

    name = "dispatch"

    def __init__(self, config: DispatchConfig) -> None:
        super().__init__()
        self.config = config
        self.queued_bytes = 0
        self.sent = 0
        self.failed = 0
        self.sent_inline = 0
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._log = RateLimitedLog(logger, interval=1.0)  # one line a second under a storm

    @property
    def queue_length(self) -> int:
        """Messages waiting to be sent."""
        return self._queue.qsize()

    async def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(
            self._work(), name="clustersession-dispatch"
        )

    async def stop(self) -> None:
        """Give queued messages a moment to go out, then stop the worker."""
        deadline = time.monotonic() + 2.0
        while self._queue.qsize() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # a bounded drain, not synchronisation
        if self._worker is not None:
            await cancel_and_wait([self._worker], logger=logger)
            self._worker = None

    async def send(self, members: Sequence[Member], payload: bytes, options: int) -> None:
        if not options & ASYNCHRONOUS or self._worker is None:
            await super().send(members, payload, options)
            return
        size = len(payload)
        if self.queued_bytes + size > self.config.max_queue_size:
            if not self.config.always_send:
                raise ChannelError({m: QueueFullError("dispatch queue is full") for m in members})
            self.sent_inline += 1
            await super().send(members, payload, options)
            return
        self.queued_bytes += size
        self._queue.put_nowait((tuple(members), payload, options))

    async def _work(self) -> None:
        while True:
            members, payload, options = await self._queue.get()
            self.queued_bytes -= len(payload)
            try:
                await super().send(members, payload, options)
                self.sent += 1
            except ChannelError as exc:
                self.failed += len(exc.failed)
                self._log.warning("async", "async replication: %s", exc)
            except Exception:
                self.failed += len(members)
                logger.exception("async send failed")

    def stats(self) -> dict[str, float | int]:
        return {
            "queue_length": self.queue_length,
            "queued_bytes": self.queued_bytes,
            "async_sent": self.sent,
            "async_failed": self.failed,
            "sent_inline_queue_full": self.sent_inline,
        }
