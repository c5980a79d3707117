"""ManagerThread: request threads' calls run on the manager's loop thread, in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from clustersession.config import ClusterConfig
from clustersession.sessions.managers import manager_for
from clustersession.sessions.threaded import ManagerThread


@pytest.fixture
def manager_thread() -> Iterator[ManagerThread]:
    thread = ManagerThread(lambda: manager_for(ClusterConfig(), idle_timeout=60), name="test-mt")
    thread.start()
    yield thread
    thread.stop()


def test_what_a_thread_submitted_has_run_when_its_next_call_returns(
    manager_thread: ManagerThread,
) -> None:
    seen: dict[int, list[int]] = {n: [] for n in range(4)}
    loop_threads: set[str] = set()
    behind: list[tuple[int, int, int]] = []

    def request_thread(n: int) -> None:
        for i in range(300):
            manager_thread.submit(lambda i=i: seen[n].append(i))
            if i % 7 == 0:
                count = manager_thread.call(lambda: len(seen[n]))
                if count != i + 1:
                    behind.append((n, i, count))
            loop_threads.add(manager_thread.call(lambda: threading.current_thread().name))

    threads = [threading.Thread(target=request_thread, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert behind == []
    assert all(seen[n] == list(range(300)) for n in range(4))
    assert loop_threads == {"test-mt"}


def test_a_call_returns_the_functions_result_or_raises_its_error(
    manager_thread: ManagerThread,
) -> None:
    assert manager_thread.call(lambda: 42) == 42

    def broken() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        manager_thread.call(broken)

    async def answer() -> str:
        return "yes"

    assert manager_thread.run(answer()) == "yes"


def test_a_call_the_loop_does_not_run_in_time_raises_timeout(
    manager_thread: ManagerThread,
) -> None:
    release = threading.Event()
    manager_thread.submit(lambda: release.wait(5))  # the loop thread is busy
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        manager_thread.call(lambda: None, timeout=0.2)
    assert time.monotonic() - started < 2
    release.set()
    assert manager_thread.responsive(5)
