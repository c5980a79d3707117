"""The status page: off unless configured, protected, HTML with a picture, and JSON."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from clustersession import ClusterConfig, ClusterSessionMiddleware

pytestmark = pytest.mark.anyio


async def write(request: Request) -> PlainTextResponse:
    request.session["k"] = 1
    return PlainTextResponse("ok")


def app_with(path: str = "/cluster-status", token: str = "") -> ClusterSessionMiddleware:
    config = ClusterConfig(jvm_route="n1")
    status = replace(config.valves.status, path=path, token=token)
    config = replace(config, valves=replace(config.valves, status=status))
    return ClusterSessionMiddleware(
        Starlette(routes=[Route("/write", write)]), secret_key="k", config=config
    )


def client(app: ClusterSessionMiddleware, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app, client=(host, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_off_by_default() -> None:
    async with client(app_with(path=""), "127.0.0.1") as c:
        assert (await c.get("/cluster-status")).status_code == 404


async def test_loopback_only_without_a_token() -> None:
    app = app_with()
    async with client(app, "10.1.2.3") as remote:
        assert (await remote.get("/cluster-status")).status_code == 403
    async with client(app, "127.0.0.1") as local:
        await local.get("/write")
        page = await local.get("/cluster-status")
        assert page.status_code == 200
        assert "<svg" in page.text and "n1" in page.text
        data = (await local.get("/cluster-status.json")).json()
        assert data["sessions"] == 1 and data["distributable"] is False


async def test_token_protects_the_page() -> None:
    app = app_with(token="s3cret-token")
    async with client(app, "127.0.0.1") as c:
        assert (await c.get("/cluster-status.json")).status_code == 403
        assert (await c.get("/cluster-status.json?token=wrong")).status_code == 403
        ok = await c.get("/cluster-status.json", headers={"authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and ok.json()["route"] == "n1"
        assert (await c.get("/cluster-status?token=s3cret-token")).status_code == 200


async def test_the_token_as_a_bearer_header_from_any_client() -> None:
    app = app_with(token="s3cret-token")
    async with client(app, "10.1.2.3") as remote:  # not loopback: only the token counts
        assert (await remote.get("/cluster-status.json")).status_code == 403
        for header in ("Bearer s3cret-token", "bearer s3cret-token", "BEARER  s3cret-token "):
            answer = await remote.get("/cluster-status.json", headers={"authorization": header})
            assert answer.status_code == 200, header
        wrong = {"authorization": "Bearer wrong"}
        assert (await remote.get("/cluster-status.json", headers=wrong)).status_code == 403
        # A wrong header is not rescued by a right query string: the header is what counts.
        both = await remote.get("/cluster-status.json?token=s3cret-token", headers=wrong)
        assert both.status_code == 403
        basic = {"authorization": "Basic czNjcmV0LXRva2Vu"}
        assert (await remote.get("/cluster-status.json", headers=basic)).status_code == 403
        # The query string still works (a browser cannot send a header).
        assert (await remote.get("/cluster-status?token=s3cret-token")).status_code == 200
