"""Liveness and readiness probes (``valves.health``), in process and on real servers.

Readiness answers 503 until the state transfer is over and 200 after, on a uvicorn
node whose transfer is held back by its peer until the test has seen the 503; a
stopping manager is not ready; the WSGI adapter answers the same probes.
"""

from __future__ import annotations

import asyncio
import http.client
import secrets
import threading
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from clustersession import ClusterConfig, ClusterSessionMiddleware
from clustersession.config import HealthValveConfig
from clustersession.sessions import codec
from clustersession.sessions.delta_manager import DeltaManager
from clustersession.sessions.record import SessionDelta
from clustersession.sessions.threaded import ManagerThread
from clustersession.wsgi import ClusterSessionWSGIMiddleware
from tests.sessions.memnet import Cluster as MemoryCluster
from tests.support.polling import eventually, wait_for
from tests.support.servers import HOST, Cluster, running, uvicorn

PROBES = HealthValveConfig(liveness_path="/live", readiness_path="/ready")


def probed(config: ClusterConfig) -> ClusterConfig:
    return replace(config, valves=replace(config.valves, health=PROBES))


async def home(request: Any) -> PlainTextResponse:
    return PlainTextResponse("app")


def asgi_app(config: ClusterConfig) -> ClusterSessionMiddleware:
    return ClusterSessionMiddleware(
        Starlette(routes=[Route("/", home)]), secret_key="k", config=config
    )


def test_probes_are_off_by_default_and_reach_the_app() -> None:
    with TestClient(asgi_app(ClusterConfig(jvm_route="n1"))) as client:
        assert client.get("/ready").status_code == 404
        assert client.get("/").text == "app"


def test_ready_once_started_and_not_after_the_manager_stopped() -> None:
    app = asgi_app(probed(ClusterConfig(jvm_route="n1")))
    with TestClient(app) as client:  # lifespan: started
        assert (client.get("/live").status_code, client.get("/live").text) == (200, "live\n")
        ready = client.get("/ready")
        assert (ready.status_code, ready.text) == (200, "ready\n")
    # Lifespan shutdown stopped the manager: not ready, and a probe does not restart it.
    after = TestClient(app)
    assert after.get("/ready").status_code == 503
    assert after.get("/ready").text == "not ready\n"
    assert after.get("/live").status_code == 200


def test_a_probe_after_lifespan_shutdown_does_not_restart_the_node() -> None:
    async def scenario() -> None:
        app = asgi_app(probed(ClusterConfig(jvm_route="n1")))
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        lifespan = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/ready")).status_code == 200
            await inbox.put({"type": "lifespan.shutdown"})
            assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
            await lifespan
            assert (await client.get("/ready")).status_code == 503
            # The probe started nothing: the node stays down (it would be up at once).
            assert not await eventually(lambda: app.manager.started, timeout=0.5)
            assert (await client.get("/ready")).status_code == 503

    asyncio.run(scenario())


def test_a_probe_starts_a_manager_served_without_lifespan() -> None:
    async def scenario() -> None:
        app = asgi_app(probed(ClusterConfig(jvm_route="n1")))
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = await client.get("/ready")
            assert first.status_code == 503  # nothing had started it
            answers: list[int] = []

            async def ready() -> bool:
                answers.append((await client.get("/ready")).status_code)
                return answers[-1] == 200

            deadline = time.monotonic() + 10
            while not await ready() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert answers[-1] == 200
            await app.manager.stop()

    asyncio.run(scenario())


def test_a_stopping_delta_manager_is_not_ready() -> None:
    async def scenario() -> None:
        cluster = MemoryCluster()
        await cluster.start("a")
        joining = cluster.manager("b")
        await joining.join()
        assert joining.started and not joining.ready  # the state transfer runs on
        await joining.start()  # returns once it is over
        assert joining.ready
        stopping = asyncio.ensure_future(joining.stop())
        assert await eventually(lambda: not joining.ready)
        await stopping
        assert not joining.ready
        await cluster.stop()

    asyncio.run(scenario())


def test_the_wsgi_adapter_answers_the_probes() -> None:
    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app"]

    app = ClusterSessionWSGIMiddleware(inner, secret_key="k", config=probed(ClusterConfig()))
    try:
        replies: list[tuple[str, bytes]] = []

        def get(path: str) -> tuple[str, bytes]:
            status: list[str] = []
            body = b"".join(app({"PATH_INFO": path}, lambda s, h, e=None: status.append(s)))
            replies.append((status[0], body))
            return replies[-1]

        assert get("/live") == ("200 OK", b"live\n")
        # The first probe starts the manager on a thread of its own and does not wait.
        assert wait_for(lambda: get("/ready") == ("200 OK", b"ready\n"), 10.0), replies
        assert app.manager.running
    finally:
        app.manager.stop()
    assert get("/ready") == ("503 Service Unavailable", b"not ready\n")
    # The probe started nothing: a stopped worker is leaving, it stays down. (It used to
    # start the manager again on a thread nobody stopped, which built its node in a later
    # test: a second "w" node in test_wsgi_backup_fetch's cluster failed it.)
    assert not wait_for(lambda: app.manager.running, 0.5)
    assert get("/ready") == ("503 Service Unavailable", b"not ready\n")


# -- a real node whose state transfer its peer holds back ------------------------------


class GatedPeer:
    """The oldest member, in this process: a DeltaManager whose answer to a state
    transfer request waits until :meth:`release` (the rest of it is the real one)."""

    def __init__(self, env: dict[str, str], sessions: int) -> None:
        self.asked = threading.Event()
        self.gate = threading.Event()
        self.thread = ManagerThread(lambda: self._build(env), name="gated-peer")
        self.thread.start()
        now = time.time()
        self.thread.commit(
            [
                SessionDelta(
                    secrets.token_hex(16),
                    "n1",
                    now,
                    created_at=now,
                    set={"n": codec.encode(n)},
                    max_inactive_interval=1800,
                )
                for n in range(sessions)
            ]
        )
        self.thread.flush()

    def _build(self, env: dict[str, str]) -> DeltaManager:
        manager = DeltaManager(ClusterConfig.from_env(env))
        serve = manager.state_transfer.serve

        async def held_back(member: Any, request_id: int) -> None:
            self.asked.set()
            await asyncio.to_thread(self.gate.wait, 60)
            await serve(member, request_id)

        manager.state_transfer.serve = held_back  # type: ignore[method-assign]
        return manager

    def release(self) -> None:
        self.gate.set()

    def stop(self) -> None:
        self.gate.set()
        self.thread.stop()


def probe(port: int, path: str) -> int | None:
    """The status a probe gets, or None while nothing listens."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


@pytest.mark.network
def test_readiness_is_503_through_the_state_transfer_and_200_after() -> None:
    cluster = Cluster()
    peer = GatedPeer(cluster.env("n1"), sessions=25)
    try:
        with running() as servers:
            env = cluster.env(
                "n2",
                VALVES__HEALTH__READINESS_PATH="/ready",
                VALVES__HEALTH__LIVENESS_PATH="/live",
            )
            node = servers.start(uvicorn("n2", env))
            answers: list[int | None] = []

            def answered() -> bool:
                answers.append(probe(node.port, "/ready"))
                return answers[-1] is not None

            assert wait_for(answered, 60.0, 0.05), node.output()
            assert answers[-1] == 503
            # The node asked the peer for its sessions; the peer holds them back.
            assert peer.asked.wait(30), node.output()
            assert probe(node.port, "/ready") == 503
            assert probe(node.port, "/live") == 200
            peer.release()
            assert wait_for(lambda: probe(node.port, "/ready") == 200, 30.0, 0.05)
            # Ready means the sessions are here.
            assert node.health() is not None
            assert node.health()["sessions"] == 25  # type: ignore[index]
    finally:
        peer.stop()
