"""The session table under concurrent requests and expiry."""

from __future__ import annotations

import pytest

from clustersession.sessions import codec
from clustersession.sessions.ids import SessionIds
from clustersession.sessions.listeners import SessionEvent, SessionListener
from clustersession.sessions.local_manager import LocalManager
from clustersession.sessions.session import Session

pytestmark = pytest.mark.anyio


def new_session(manager: LocalManager, ids: SessionIds, token: str | None = None) -> Session:
    record = manager.lookup(token) if token else None
    return Session(ids, record, default_max_inactive_interval=60, now=manager.clock())


async def test_concurrent_requests_writing_different_keys_keep_both() -> None:
    ids, manager = SessionIds("k", "n1"), LocalManager()
    first = new_session(manager, ids)
    first["a"] = 1
    await manager.commit(first.changes(manager.clock()))
    token = first.id.partition(".")[0]

    left, right = new_session(manager, ids, token), new_session(manager, ids, token)
    left["cart"] = ["apple"]
    assert right["a"] == 1  # reads a, leaves it unchanged
    right["theme"] = "dark"
    await manager.commit(left.changes(manager.clock()))
    await manager.commit(right.changes(manager.clock()))

    record = manager.lookup(token)
    assert record is not None
    decoded = {k: codec.decode(v) for k, v in record.attributes.items()}
    assert decoded == {"a": 1, "cart": ["apple"], "theme": "dark"}


async def test_a_request_reads_its_session_as_it_began_while_another_commits() -> None:
    ids, manager = SessionIds("k", "n1"), LocalManager()
    first = new_session(manager, ids)
    first.update({"a": 1, "b": 2})
    await manager.commit(first.changes(manager.clock()))
    token = first.id.partition(".")[0]

    reader, writer = new_session(manager, ids, token), new_session(manager, ids, token)
    writer["a"] = 10
    writer["c"] = 3
    del writer["b"]
    await manager.commit(writer.changes(manager.clock()))

    # Read after the other commit, first touched now: still what the request began with.
    assert (reader["a"], reader["b"], "c" in reader) == (1, 2, False)
    assert reader.pop("missing", None) is None  # a removal that removes nothing
    await manager.commit(reader.changes(manager.clock() + 2))
    record = manager.lookup(token)
    assert record is not None
    assert {k: codec.decode(v) for k, v in record.attributes.items()} == {"a": 10, "c": 3}


async def test_read_only_request_sends_an_access_only_delta() -> None:
    ids, manager = SessionIds(None, None), LocalManager()
    first = new_session(manager, ids)
    first["a"] = {"deep": [1]}
    await manager.commit(first.changes(manager.clock()))
    reader = new_session(manager, ids, first.id)
    assert reader["a"]["deep"] == [1]
    (delta,) = reader.changes(manager.clock() + 1)
    assert delta.is_access_only


async def test_sweep_destroys_only_expired_sessions() -> None:
    now = [1000.0]
    destroyed: list[SessionEvent] = []

    class Watch(SessionListener):
        def session_destroyed(self, event: SessionEvent) -> None:
            destroyed.append(event)

    ids = SessionIds(None, None)
    manager = LocalManager(listeners=[Watch()], clock=lambda: now[0])
    short = Session(ids, None, default_max_inactive_interval=10, now=now[0])
    short["x"] = 1
    forever = Session(ids, None, default_max_inactive_interval=0, now=now[0])
    forever["x"] = 2
    await manager.commit(short.changes(now[0]) + forever.changes(now[0]))
    now[0] += 11
    assert manager.sweep() == 1
    assert [e.session_id for e in destroyed] == [short.id]
    assert destroyed[0].reason == "expired"
    assert len(manager.store) == 1


async def test_lifetime_ends_an_active_session_counted_from_creation() -> None:
    now = [1000.0]
    ids = SessionIds(None, None)
    manager = LocalManager(clock=lambda: now[0], lifetime=30)
    session = Session(ids, None, default_max_inactive_interval=60, now=now[0])
    session["user"] = "ann"
    await manager.commit(session.changes(now[0]))
    token = session.id
    for _ in range(5):  # read every 5 s: never idle for long
        now[0] += 5
        reader = new_session(manager, ids, token)
        assert reader["user"] == "ann"
        await manager.commit(reader.changes(now[0]))
    now[0] += 5  # 30 s after creation
    assert manager.lookup(token) is None


async def test_a_flood_of_refused_sessions_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    ids, manager = SessionIds(None, None), LocalManager(max_active_sessions=1)
    first = new_session(manager, ids)
    first["a"] = 1
    await manager.commit(first.changes(manager.clock()))
    with caplog.at_level("WARNING", logger="clustersession"):
        refused = [manager.may_create() for _ in range(1000)]
    assert refused == [False] * 1000
    assert manager.rejected_sessions == 1000  # every refusal is counted
    lines = [r.getMessage() for r in caplog.records if "refused a new session" in r.getMessage()]
    assert lines == ["refused a new session: 1 active, max_active_sessions = 1"]
