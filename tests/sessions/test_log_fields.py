"""Log records about a session carry its id, cut as the messages cut it, as a field (``extra=``)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from clustersession import ClusterSessionMiddleware
from clustersession.sessions.ids import loggable_id

from .memnet import Cluster, create


async def store_an_object(request: Request) -> PlainTextResponse:
    request.session["items"] = [1]
    request.session["items"].append(object())  # changed in place, not serialisable: not saved
    return PlainTextResponse("ok")


def test_a_session_not_saved_is_logged_with_its_cut_id(caplog: pytest.LogCaptureFixture) -> None:
    app = ClusterSessionMiddleware(
        Starlette(routes=[Route("/", store_an_object)]), secret_key="k" * 32
    )
    with caplog.at_level(logging.INFO, logger="clustersession"), TestClient(app) as client:
        cookie = client.get("/").cookies.get("session")
    (record,) = [r for r in caplog.records if "not saved" in r.getMessage()]
    session_id = record.session_id  # type: ignore[attr-defined]
    assert session_id.endswith("…") and len(session_id) == 9  # 8 characters, never all
    assert cookie is not None and cookie.startswith(session_id[:8])  # the id it stands for
    assert session_id in record.getMessage()


def test_a_session_taken_over_from_a_gone_node_is_logged_with_its_cut_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = "t" * 32

    async def scenario() -> None:
        cluster = Cluster()
        a = await cluster.start("a")
        b = await cluster.start("b", state_transfer_timeout=0)
        await a.commit([create(token, "a", cart=1)])
        await cluster.network.settle()
        await a.stop()
        await cluster.network.settle()
        with caplog.at_level(logging.INFO, logger="clustersession"):
            assert b.open(token).rerouted
        await b.stop()

    asyncio.run(scenario())
    (record,) = [r for r in caplog.records if "is gone" in r.getMessage()]
    assert record.session_id == loggable_id(token) == "tttttttt…"  # type: ignore[attr-defined]
