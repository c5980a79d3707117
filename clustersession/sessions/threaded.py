"""``ManagerThread``: a manager for request threads (WSGI), on its own event loop.

The managers are asyncio code and touch their store from one thread only. A
WSGI server runs requests on threads of its own, so the manager runs on an
event loop in a daemon thread and request threads reach it through this class:
every call runs on the loop thread and the request thread waits for its answer
(a record it opens is a detached copy, so a merge that lands meanwhile cannot
change it under the request).

It starts lazily, once per process, in the process that serves: the first
request starts the loop and the manager and waits until the manager serves (a
joining node's state transfer included). After a fork (gunicorn's pre-fork
model) the child starts its own, since threads do not survive a fork and a
pre-forked master must not own the sockets its workers use. It stops at exit.

A *companion* (the farm deployer) may share the manager's loop and channel: it
is built before the manager starts, started after it, and stopped before it, so
it lives exactly as long as this process's member.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import logging
import os
import threading
import weakref
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any, Generic, Protocol, TypeVar, cast

from .manager import ClusterView, Manager, Opened
from .record import SessionDelta, SessionRecord

logger = logging.getLogger("clustersession")

T = TypeVar("T")

STOP_TIMEOUT = 10.0  # seconds stop() waits for the manager to leave the cluster


class Companion(Protocol):
    """Something that runs beside the manager, on its loop (the farm deployer)."""

    async def start(self) -> None:
        """Start (after the manager started)."""

    async def stop(self) -> None:
        """Stop (before the manager stops)."""


CompanionFactory = Callable[[Manager], Companion]
"""Builds a companion from the manager, before it starts (on the loop thread)."""


class ManagerThread:
    """Runs the manager ``factory`` builds on an event loop of its own, in a daemon thread.

    ``start_timeout`` bounds the wait of the first request for the manager to
    start (``None``: no bound); a failure to start is raised to every request
    that waits, and the next request tries again. ``companion``, if given, builds
    a :class:`Companion` from the manager before it starts; it starts after the
    manager and stops before it.
    """

    def __init__(
        self,
        factory: Callable[[], Manager],
        *,
        name: str = "clustersession",
        start_timeout: float | None = None,
        companion: CompanionFactory | None = None,
    ) -> None:
        self._factory = factory
        self._name = name
        self._start_timeout = start_timeout
        self._companion_factory = companion
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._manager: Manager | None = None
        self._companion: Companion | None = None
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_due = False  # a _run_calls is scheduled on the loop and has not begun
        # The process whose stop() stopped the manager last (a start() clears it): a
        # probe (start_soon) must not bring a leaving node back, as on the ASGI side.
        self._stopped_in: int | None = None
        _RUNNING.add(self)

    # -- lifecycle -------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether this process's manager has started (and not stopped)."""
        return self._manager is not None and self._pid == os.getpid()

    @property
    def ready(self) -> bool:
        """Whether this process's manager serves (started, sessions received, not stopping)."""
        manager = self._manager
        return manager is not None and self._pid == os.getpid() and manager.ready

    def start_soon(self) -> None:
        """Start the manager on a thread of its own, if it is not running or starting.

        For a readiness probe: it must not wait for the state transfer, but a node
        that only probes arrive at (a balancer sends nothing before it is ready)
        must still start. Not after :meth:`stop` in this process (a worker that is
        leaving): the probe answers "not ready" and the node stays down.
        """
        if self.running or self._lock.locked() or self._stopped_in == os.getpid():
            return

        def start() -> None:
            try:
                self.start()
            except Exception:
                logger.exception("session manager did not start")

        threading.Thread(target=start, name=self._name + "-start", daemon=True).start()

    def responsive(self, timeout: float) -> bool:
        """Whether the manager's loop thread runs a call within ``timeout`` seconds.

        ``True`` before it starts: there is no loop to be stuck yet.
        """
        if not self.running:
            return True
        try:
            self.call(lambda: None, timeout=timeout)
        except TimeoutError:
            return False
        return True

    @property
    def companion(self) -> Companion | None:
        """This process's companion while it runs (None without one, or when stopped)."""
        return self._companion if self.running else None

    def start(self) -> Manager:
        """Start the loop thread and the manager in this process, if not yet; return it."""
        manager = self._manager
        if manager is not None and self._pid == os.getpid():
            return manager
        with self._lock:
            if self._manager is not None and self._pid == os.getpid():
                return self._manager
            self._stopped_in = None
            # Nothing inherited from a parent process is used: its thread is gone.
            self._manager, self._loop, self._thread = None, None, None
            self._companion = None
            self._calls, self._wake_due = collections.deque(), False
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=_run_loop, args=(loop, ready), name=self._name, daemon=True
            )
            thread.start()
            ready.wait()
            manager = self._factory_on(loop)
            future = asyncio.run_coroutine_threadsafe(self._start_on_loop(manager), loop)
            try:
                companion = future.result(self._start_timeout)
            except BaseException:
                future.cancel()
                loop.call_soon_threadsafe(loop.stop)
                thread.join(STOP_TIMEOUT)
                loop.close()
                raise
            self._loop, self._thread, self._manager = loop, thread, manager
            self._companion = companion
            self._pid = os.getpid()
            logger.info("session manager started in process %d", self._pid)
            return manager

    async def _start_on_loop(self, manager: Manager) -> Companion | None:
        """Build the companion, start the manager, then start the companion.

        Built first: it listens on the manager's channel before that joins, so it
        hears every message sent to the new member (a deploy announced the moment
        the member shows up); started after, once the manager serves.
        """
        if self._companion_factory is None:
            await manager.start()
            return None
        companion = self._companion_factory(manager)
        try:
            await manager.start()
        except BaseException:
            await companion.stop()
            raise
        try:
            await companion.start()
        except BaseException:
            await _stop(manager, companion)  # a member without its companion is not what was asked
            raise
        return companion

    def _factory_on(self, loop: asyncio.AbstractEventLoop) -> Manager:
        # Built on the loop thread: a manager may create asyncio objects as it is built.
        future: concurrent.futures.Future[Manager] = concurrent.futures.Future()

        def build() -> None:
            try:
                future.set_result(self._factory())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(build)
        return future.result()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the manager (it leaves the cluster) and the loop thread, in this process."""
        with self._lock:
            manager, loop, thread = self._manager, self._loop, self._thread
            if manager is None or loop is None or thread is None or self._pid != os.getpid():
                return
            self._stopped_in = os.getpid()
            companion, self._companion = self._companion, None
            self._manager, self._loop, self._thread = None, None, None
            try:
                asyncio.run_coroutine_threadsafe(_stop(manager, companion), loop).result(timeout)
            except Exception:
                logger.exception("session manager did not stop cleanly")
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()

    # -- what request threads ask ----------------------------------------------

    def clock(self) -> float:
        """The manager's wall clock (a plain function: safe on any thread)."""
        return self.start().clock()

    @property
    def fetches(self) -> bool:
        """``Manager.fetches``: whether :meth:`fetch` may bring a session here."""
        return self.start().fetches

    @property
    def fetcher(self) -> Callable[[str, str | None], None] | None:
        """:meth:`fetch` when the manager fetches (the backup manager), else ``None``:
        what the WSGI adapters hand the front to call before opening a session."""
        return self.fetch if self.fetches else None

    def fetch(self, token: str, route: str | None) -> None:
        """``Manager.fetch`` on the loop thread, before :meth:`open` (the backup manager).

        ``route`` is the cookie's: it locates a session this node has no proxy
        entry for yet (it just joined), as on the ASGI side.
        """
        manager = self.start()
        self.run(manager.fetch(token, route))

    def open(self, token: str) -> Opened:
        """``Manager.open`` on the loop thread; the record comes back detached."""
        manager = self.start()
        return self.call(lambda: _detached(manager.open(token)))

    def may_create(self) -> bool:
        """``Manager.may_create`` on the loop thread."""
        manager = self.start()
        return self.call(manager.may_create)

    def commit(self, deltas: Sequence[SessionDelta], *, replicate: bool = True) -> None:
        """Commit a request's changes; with send options 2 and 6, wait for the members.

        In asynchronous mode nothing is waited for: the commit is queued on the
        loop thread, which runs its callbacks in order, so whatever this process
        asks the manager next (the same user's next request) sees it.
        """
        manager = self.start()
        if manager.waits_for_peers:
            self.run(manager.commit(list(deltas), replicate=replicate))
        else:
            self.submit(lambda: manager.commit_nowait(deltas, replicate=replicate))

    def flush(self) -> None:
        """Wait until everything queued on the loop thread so far has run (commits included)."""
        self.start()
        self.call(lambda: None)

    def sweep(self) -> int:
        """``Manager.sweep`` on the loop thread: expire now what the next sweep would."""
        manager = self.start()
        return self.call(manager.sweep)

    def view(self) -> ClusterView:
        """``Manager.view`` on the loop thread."""
        manager = self.start()
        return self.call(manager.view)

    # -- plumbing --------------------------------------------------------------
    #
    # Request threads queue their calls here and the loop thread runs them in order,
    # all that are queued in one callback: the loop is woken (a byte written to its
    # self-pipe, a system call that also lets the GIL go) only when no run is
    # already due, and a thread waits on one lock, not a concurrent Future.

    def call(self, function: Callable[[], T], *, timeout: float | None = None) -> T:
        """Run ``function`` on the loop thread and return its result here.

        Raises ``TimeoutError`` if the loop has not run it within ``timeout`` seconds.
        """
        reply: _Reply[T] = _Reply()
        self._post(partial(reply.run, function))
        return reply.wait(timeout)

    def submit(self, function: Callable[[], object]) -> None:
        """Queue ``function`` on the loop thread, behind what was queued before; do not wait."""
        self._post(partial(_logged, function))

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop thread and return its result here."""
        reply: _Reply[T] = _Reply()
        self._post(partial(reply.run_task, work))
        return reply.wait(None)

    def _post(self, call: Callable[[], None]) -> None:
        loop = self._loop
        assert loop is not None, "start() first"
        self._calls.append(call)  # appended before the flag is read: see _run_calls
        if not self._wake_due:
            self._wake_due = True
            loop.call_soon_threadsafe(self._run_calls)

    def _run_calls(self) -> None:
        # The flag is cleared before the queue is read: a call appended after the
        # last pop finds it cleared and wakes the loop again, so none is left behind.
        self._wake_due = False
        calls = self._calls
        while calls:
            calls.popleft()()


class _Reply(Generic[T]):
    """One call's answer, handed from the loop thread to the thread waiting for it."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()  # released once the answer is in
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self, function: Callable[[], T]) -> None:
        """On the loop thread: run ``function`` and hand over its result or error."""
        try:
            self._value = function()
        except BaseException as exc:
            self._error = exc
        self._done.release()

    def run_task(self, work: Coroutine[Any, Any, T]) -> None:
        """On the loop thread: run ``work`` as a task; hand over its outcome when it ends."""
        try:
            task = asyncio.get_running_loop().create_task(work)
        except BaseException as exc:
            work.close()
            self._error = exc
            self._done.release()
            return
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[T]) -> None:
        if task.cancelled():
            self._error = concurrent.futures.CancelledError()
        elif task.exception() is not None:
            self._error = task.exception()
        else:
            self._value = task.result()
        self._done.release()

    def wait(self, timeout: float | None) -> T:
        """The answer (its error raised); ``TimeoutError`` if none within ``timeout`` s."""
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"the session manager's loop did not answer within {timeout} s")
        if self._error is not None:
            raise self._error
        return cast(T, self._value)


def _logged(function: Callable[[], object]) -> None:
    try:
        function()
    except Exception:
        logger.exception("session manager call failed")


async def _stop(manager: Manager, companion: Companion | None) -> None:
    """The companion first (it uses the manager's channel), then the manager."""
    try:
        if companion is not None:
            await companion.stop()
    finally:
        await manager.stop()


def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


def _detached(opened: Opened) -> Opened:
    """``opened`` with a copy of its record: later merges on the loop thread cannot touch it."""
    record = opened.record
    if record is None:
        return opened
    copy = SessionRecord(
        record.token,
        record.route,
        record.created_at,
        record.last_accessed_at,
        record.max_inactive_interval,
        dict(record.attributes),
        local=dict(record.local) if record.local else None,
    )
    return Opened(copy, opened.retired, opened.rerouted)


_RUNNING: weakref.WeakSet[ManagerThread] = weakref.WeakSet()
_BUILDERS: list[Callable[[], object]] = []


def build_at_start_all(builder: Callable[[], object]) -> None:
    """Have :func:`start_all` call ``builder`` first, to build a ``ManagerThread`` it makes lazily.

    An adapter that builds its ``ManagerThread`` on first use (the Django engine,
    from the settings) has none yet when a server hook runs before any request:
    without this, the hook would start nothing and the worker would join only
    with its first request.
    """
    if builder not in _BUILDERS:
        _BUILDERS.append(builder)


def start_all() -> None:
    """Start the manager of every ``ManagerThread`` of this process now (server hooks)."""
    for builder in list(_BUILDERS):
        builder()
    for manager_thread in list(_RUNNING):
        manager_thread.start()


@atexit.register
def stop_all() -> None:
    """Stop them all: each leaves the cluster cleanly (the others see a LEAVE, not a crash)."""
    for manager_thread in list(_RUNNING):
        manager_thread.stop()
