"""Rotating the secret on a live 3-node cluster of uvicorn processes, as docs/security.md says.

Three rolling restarts, one node at a time, while a client keeps writing to its
sessions through whichever nodes are up: (a) every node accepts the new secret,
(b) every node signs with it, (c) the old one is dropped. Nothing may be lost,
no member may be dropped for anything but its own restart, and ids signed with
the old secret keep working until step (c).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from clustersession.sessions.ids import SessionIds

from ..support.polling import wait_for
from ..support.servers import Cluster, Reply, Server, Servers, running, uvicorn

pytestmark = pytest.mark.network

OLD = "rotation-old-secret-0123456789"
NEW = "rotation-new-secret-0123456789"
ROUTES = ("r1", "r2", "r3")
STEPS = (
    ("a: accept the new secret", {"SECRET": OLD, "PREVIOUS_SECRETS": NEW}),
    ("b: sign with the new secret", {"SECRET": NEW, "PREVIOUS_SECRETS": OLD}),
    ("c: drop the old secret", {"SECRET": NEW, "PREVIOUS_SECRETS": ""}),
)
# Sync replication: a write is on every member when it is answered, so the client
# may read it back from any node at once.
SETTINGS = {"CHANNEL_SEND_OPTIONS": "6", "SECRET": OLD}


@dataclass
class Client:
    """Writes a counter into each of its sessions, round robin over the nodes that are up.

    Before each write it reads the session back from the next node: the value it
    wrote last must be there. A node is taken out of ``up`` (under ``lock``, so no
    request to it is in flight) before it is stopped, and put back once it rejoined.
    """

    up: list[Server]
    counters: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    rounds: int = 0
    _turn: int = 0

    def _next(self) -> Server:
        self._turn += 1
        return self.up[self._turn % len(self.up)]

    def new_session(self) -> str:
        with self.lock:
            reply = self._next().request("POST", "/update", json_body={"n": 0})
        assert reply.status == 200 and reply.cookie is not None, reply
        self.counters[reply.cookie] = 0
        return reply.cookie

    def check_once(self) -> None:
        for cookie in list(self.counters):
            with self.lock:
                if cookie not in self.counters:
                    continue  # retired by the test meanwhile
                n = self.counters[cookie]
                reader, writer = self._next(), self._next()
                read = reader.request("GET", "/", cookie)
                if read.json().get("n") != n:
                    self.problems.append(f"{reader.name} has {read.json()} for a session at n={n}")
                cookie = self._follow(cookie, read)
                reply = writer.request("POST", "/update", cookie, json_body={"n": n + 1})
                if reply.status != 200 or reply.json().get("n") != n + 1:
                    self.problems.append(f"{writer.name} answered {reply} to n={n + 1}")
                cookie = self._follow(cookie, reply)
                self.counters[cookie] = n + 1
                self._check_members(writer)
        self.rounds += 1

    def _follow(self, cookie: str, reply: Reply) -> str:
        """The cookie after ``reply``: a session whose node restarted moves to the
        answering node's route (the route binder), keeping its token."""
        new = reply.cookie
        if new is None or new == cookie:
            return cookie
        if new.partition(".")[0] != cookie.partition(".")[0]:
            self.problems.append(f"a session's token changed: {cookie[:8]}… → {new[:8]}…")
        del self.counters[cookie]
        self.counters[new] = -1  # set by the caller
        return new

    def _check_members(self, node: Server) -> None:
        # Every node that is up lists every other node that is up: nobody was dropped.
        health = node.health()
        others = sorted(server.route for server in self.up if server is not node)
        if health is None or not set(others) <= set(health["members"]):
            self.problems.append(f"{node.name} lists {health} while {others} are up")

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.check_once()
            except Exception as exc:  # a broken request is a finding, not a crash
                self.problems.append(f"{type(exc).__name__}: {exc}")

    @contextmanager
    def writing(self) -> Iterator[None]:
        thread = threading.Thread(target=self.run, name="rotation-client", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self.stop.set()
            thread.join(timeout=60)


def restart(
    servers: Servers, client: Client, node: Server, settings: dict[str, str], step: str
) -> Server:
    """Stop ``node`` gracefully, start it again with ``settings``; wait until all rejoined."""
    with client.lock:
        client.up.remove(node)
    node.terminate()
    assert node.wait_exit() in node.clean_statuses, node.output()
    env = dict(node.env)
    env.update({f"CLUSTERSESSION_{name}": value for name, value in settings.items()})
    again = servers.start(uvicorn(f"{node.route}-{step}", env))
    again.wait_healthy()
    everyone = [again, *client.up]
    for server in everyone:
        server.wait_members(s.route for s in everyone if s is not server)
    with client.lock:
        client.up.append(again)
    return again


def test_rolling_secret_rotation_loses_no_session_and_drops_no_member() -> None:
    cluster = Cluster()
    with running() as servers:
        # INFO logs: every member removal is logged with its reason, checked below.
        nodes = [
            servers.start(
                uvicorn(route, {**cluster.env(route, **SETTINGS), "TEST_NODE_LOG": "INFO"})
            )
            for route in ROUTES
        ]
        for node in nodes:
            node.wait_healthy()
        for node in nodes:
            node.wait_members(other.route for other in nodes if other is not node)
        client = Client(up=list(nodes))
        signed_with_old = {token(client.new_session()) for _ in range(3)}
        assert all(signed_with(OLD, cookie) for cookie in client.counters)
        with client.writing():
            for name, settings in STEPS:
                if name.startswith("c"):
                    # Dropping the old secret ends the ids it signed (docs/security.md):
                    # the client stops using them before step (c). That is the ones
                    # from before, and those created before step (b) reached their node.
                    with client.lock:
                        for cookie in list(client.counters):
                            if not signed_with(NEW, cookie):
                                signed_with_old.add(token(cookie))
                                del client.counters[cookie]
                for node in client.up[:]:
                    restart(servers, client, node, settings, name[0])
                    client.new_session()
                rounds = client.rounds
                assert wait_rounds(client, rounds + 2), client.problems
        assert client.problems == [], "\n".join(client.problems[:40])
        assert client.rounds >= 6

        # Ids signed with the old secret worked through (a) and (b) (the client used
        # them); after (c) they are refused, as documented. The rest is all there.
        node = client.up[0]
        for old in signed_with_old:
            assert node.request("GET", "/", old).json() == {}
        assert len(client.counters) >= 3  # the sessions created in step (c), at least
        for cookie, n in client.counters.items():
            assert signed_with(NEW, cookie) and not signed_with(OLD, cookie)
            for server in client.up:
                assert server.request("GET", "/", cookie).json() == {"n": n}

        for server in servers.started:
            log = server.output()
            removed = re.findall(r"member removed: .*\((.*)\)", log)
            assert set(removed) <= {"left the group"}, f"{server.name}: {removed}"
            assert "refused heartbeat" not in log and "does not verify" not in log, log


def wait_rounds(client: Client, rounds: int, timeout: float = 60.0) -> bool:
    """Whether the client completed ``rounds`` rounds (or found a problem) in time."""
    return wait_for(lambda: client.rounds >= rounds or bool(client.problems), timeout, 0.1)


def signed_with(secret: str, cookie: str) -> bool:
    """Whether ``cookie``'s id carries ``secret``'s signature."""
    return SessionIds(secret, None).parse(cookie) is not None


def token(cookie: str) -> str:
    """The session's token: the id without its route."""
    return cookie.partition(".")[0]
