"""Where a test node spends its time: every thread's and asyncio task's stack, on a signal.

:func:`install` (the test app does it under uvicorn) makes ``SIGUSR2`` write to
stderr (the node's log in the hosts tests) the Python stack of every thread, the
await chain of every asyncio task, and uvicorn's open connections and tasks. The
hosts harness sends it when a graceful stop outlives its wait, so a stop that
hangs says what it waits on.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import signal
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any, TextIO


def install(sig: int = signal.SIGUSR2) -> None:
    """Dump the stacks to stderr whenever ``sig`` arrives (a handler in the main thread;
    called elsewhere, e.g. an app built in a server thread, it does nothing)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(sig, lambda _sig, frame: dump(sys.stderr, frame))


def dump(out: TextIO, current: FrameType | None = None) -> None:
    """Threads, asyncio tasks (each with its await chain) and uvicorn's server state."""
    print(f"==== stack dump at {time.strftime('%H:%M:%S')} ====", file=out, flush=True)
    faulthandler.dump_traceback(file=out, all_threads=True)
    if current is not None:
        print("---- main thread (python) ----", file=out)
        traceback.print_stack(current, file=out)
    _uvicorn_state(out)
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:
        tasks = set()
    print(f"---- {len(tasks)} asyncio tasks ----", file=out)
    for task in sorted(tasks, key=lambda t: t.get_name()):
        print(f"task {task.get_name()} (cancelling={task.cancelling()}):", file=out)
        for line in _await_chain(task.get_coro()):
            print(f"    {line}", file=out)
    print("==== end of stack dump ====", file=out, flush=True)


def _await_chain(coro: Any) -> list[str]:
    """``coro``'s frame, then the frame of what it awaits, down to the innermost awaitable."""
    lines = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"{code.co_filename}:{frame.f_lineno} {code.co_name}")
        nxt = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if nxt is None and frame is None:
            lines.append(repr(coro)[:200])
        if nxt is not None and not hasattr(nxt, "cr_frame") and not hasattr(nxt, "gi_frame"):
            lines.append(f"awaiting {repr(nxt)[:200]}")
            break
        coro = nxt
    return lines


def _uvicorn_state(out: TextIO) -> None:
    for obj in gc.get_objects():
        if type(obj).__name__ == "Receiver" and hasattr(obj, "_tasks"):
            names = sorted(t.get_name() for t in obj._tasks)
            print(f"---- channel receiver: server={obj._server} tasks={names} ----", file=out)
        if type(obj).__name__ == "ServerState" and type(obj).__module__ == "uvicorn.server":
            print(
                f"---- uvicorn: {len(obj.connections)} connections, {len(obj.tasks)} tasks ----",
                file=out,
            )
            for connection in list(obj.connections):
                cycle = getattr(connection, "cycle", None)
                scope = getattr(cycle, "scope", {}) if cycle is not None else {}
                print(
                    f"connection {type(connection).__name__}: "
                    f"{scope.get('method')} {scope.get('path')} "
                    f"started={getattr(cycle, 'response_started', None)} "
                    f"complete={getattr(cycle, 'response_complete', None)} "
                    f"keep_alive={getattr(cycle, 'keep_alive', None)} "
                    f"closing={connection.transport.is_closing()}",
                    file=out,
                )
