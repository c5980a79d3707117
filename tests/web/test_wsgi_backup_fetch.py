"""The WSGI adapters fetch a session from the node the cookie names (backup manager).

A node that just joined has no proxy entry for a session yet: the cookie's route
is what locates it, as on the ASGI side; the node then becomes its primary and
the cookie is re-routed to it (issue 12). Django's engine: see test_django.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import pytest
from flask import Flask, session

import clustersession.web.flask as flask_module
import clustersession.web.wsgi as wsgi_module
from clustersession import ClusterConfig, Session
from clustersession.flask import ClusterSessionInterface
from clustersession.wsgi import ENVIRON_KEY, ClusterSessionWSGIMiddleware

from .joined_node import JoinedNode

SECRET = "joined-node-secret"
ROUTE = "w"
CONFIG = ClusterConfig(jvm_route=ROUTE, secret=SECRET, distributable=True)


def new_cookie(headers: Iterable[tuple[str, str]]) -> str | None:
    """The session cookie's value in a response's Set-Cookie, if any."""
    for name, value in headers:
        match = re.match(r"session=([^;]*)", value) if name.lower() == "set-cookie" else None
        if match:
            return match.group(1)
    return None


def test_the_wsgi_middleware_fetches_from_the_cookies_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    joined = JoinedNode(ROUTE)
    monkeypatch.setattr(wsgi_module, "manager_for", joined.manager_for)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        held: Session = environ[ENVIRON_KEY]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(dict(held)).encode()]

    middleware = ClusterSessionWSGIMiddleware(app, secret_key=SECRET, config=CONFIG)
    thread = middleware.manager
    thread.start()
    try:
        cookie = joined.unknown_session(thread, SECRET, user="alice")
        replied: list[tuple[str, list[tuple[str, str]]]] = []
        environ = {"PATH_INFO": "/", "REQUEST_METHOD": "GET", "HTTP_COOKIE": f"session={cookie}"}
        body = b"".join(middleware(environ, lambda s, h, e=None: replied.append((s, h))))
        assert json.loads(body) == {"user": "alice"}
        token = cookie.partition(".")[0]
        assert joined.holds_as_primary(thread, token)
        assert new_cookie(replied[0][1]) == f"{token}.{ROUTE}"  # the route binder's re-route
    finally:
        joined.stop(thread)
        thread.stop()


def test_flask_fetches_from_the_cookies_route(monkeypatch: pytest.MonkeyPatch) -> None:
    joined = JoinedNode(ROUTE)
    monkeypatch.setattr(flask_module, "manager_for", joined.manager_for)
    interface = ClusterSessionInterface(CONFIG)
    app = Flask(__name__)
    app.secret_key = SECRET
    app.session_interface = interface

    @app.get("/")
    def show() -> dict[str, Any]:
        return dict(session)

    thread = interface.manager
    thread.start()
    try:
        cookie = joined.unknown_session(thread, SECRET, user="bob")
        client = app.test_client(use_cookies=False)
        response = client.get("/", headers={"Cookie": f"session={cookie}"})
        assert response.get_json() == {"user": "bob"}
        token = cookie.partition(".")[0]
        assert joined.holds_as_primary(thread, token)
        assert new_cookie(response.headers.items()) == f"{token}.{ROUTE}"
    finally:
        joined.stop(thread)
        thread.stop()
