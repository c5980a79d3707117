"""Session lifetimes under real uvicorn nodes: ``manager.rolling`` and ``manager.lifetime``.

The reader is a client with a real cookie jar (``http.cookiejar`` honours Max-Age),
so "logged out" means what it means in a browser: the cookie expired and the
next request starts a new, empty session.
"""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.request
from typing import Any

import pytest

from ..support.polling import wait_for
from ..support.servers import Cluster, Server, running, start_uvicorn_nodes, uvicorn

pytestmark = pytest.mark.network

# seconds: the cookie's Max-Age. http.cookiejar counts whole seconds, so a cookie
# can expire MAX_AGE - 1 s after it was set: the reads (every 0.2 s) may stall for
# up to 2 s on a loaded machine before a rolling reader would be logged out.
MAX_AGE = 3


class Browser:
    """A client that keeps cookies as a browser does (Max-Age included)."""

    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, server: Server, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        with self.opener.open(request, timeout=30) as response:
            return json.loads(response.read())


def read_for(browser: Browser, server: Server, seconds: float) -> list[Any]:
    """Read the session every 0.2 s for ``seconds``: what each read saw."""
    seen: list[Any] = []
    end = time.monotonic() + seconds

    def read() -> bool:
        seen.append(browser.call(server, "GET", "/"))
        return time.monotonic() >= end

    assert wait_for(read, seconds + 60, interval=0.2)
    return seen


@pytest.mark.parametrize("rolling", [True, False])
def test_rolling_keeps_a_reader_logged_in_past_max_age(rolling: bool) -> None:
    cluster = Cluster()
    env = cluster.env("r1", MANAGER__ROLLING=str(rolling).lower())
    env["TEST_COOKIE_MAX_AGE"] = str(MAX_AGE)
    with running() as servers:
        node = servers.start(uvicorn("r1", env))
        node.wait_healthy()
        browser = Browser()
        assert browser.call(node, "POST", "/update", {"user": "ann"}) == {"user": "ann"}
        seen = read_for(browser, node, MAX_AGE + 2)  # past Max-Age, with 2 s to spare
    if rolling:
        # Every read re-sent the cookie: never logged out, though nothing was written.
        assert all(answer == {"user": "ann"} for answer in seen), seen
    else:
        # Without it the cookie expired MAX_AGE after the write (the server still had it).
        assert seen[0] == {"user": "ann"}
        assert seen[-1] == {}, seen


def test_lifetime_ends_an_active_session_on_every_node() -> None:
    lifetime = 3
    cluster = Cluster()
    settings = {
        "MANAGER__LIFETIME": str(lifetime),
        "MANAGER__EXPIRY_SWEEP_INTERVAL": "0.5",
        "CHANNEL_SEND_OPTIONS": "6",  # a write is answered once every member has it
    }
    with running() as servers:
        nodes = start_uvicorn_nodes(
            servers, {f"l{i}": cluster.env(f"l{i}", **settings) for i in range(3)}
        )
        created = time.monotonic()
        reply = nodes[0].request("POST", "/update", json_body={"user": "ann"})
        cookie = reply.cookie
        assert cookie is not None
        # Active on every node, round robin, until it must be gone.
        answers: list[tuple[float, Any]] = []
        turn = [0]

        def read_until_gone() -> bool:
            node = nodes[turn[0] % 3]
            turn[0] += 1
            answer = node.request("GET", "/", cookie).json()
            answers.append((time.monotonic() - created, answer))
            return answer == {}

        assert wait_for(read_until_gone, lifetime + 30, interval=0.2), answers
        # Kept while younger than its lifetime (the reads went to all three nodes) ...
        young = [answer for age, answer in answers if age < lifetime - 0.5]
        assert young and all(a == {"user": "ann"} for a in young), answers
        # ... and gone on every node, not only the one that noticed first.
        for node in nodes:
            assert node.request("GET", "/", cookie).json() == {}
        assert wait_for(lambda: all(n.health()["sessions"] == 0 for n in nodes), 20, 0.1)  # type: ignore[index]
