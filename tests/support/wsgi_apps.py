"""The test app of :mod:`tests.support.app` as WSGI apps, for real servers: Flask and Django.

Same routes and JSON shapes as the ASGI app, so a test speaks to every node of a
mixed cluster alike: ``GET /`` (the session), ``POST /update`` (a JSON object
merged into it), ``POST /append/<item>`` (onto its ``items`` list, in place),
``POST /call/invalidate`` and ``POST /call/regenerate_id`` (the id left, or an
empty body), ``GET /original`` (the id the route binder rewrote), ``GET /node``
(route, pid and session of the process that answered) and ``GET /health``
(:func:`~tests.support.app.node_info`: route, pid, the other members' routes).

Configured by the ``CLUSTERSESSION_*`` variables, as a server starts them::

    gunicorn 'tests.support.wsgi_apps:flask_app()'
    gunicorn 'tests.support.wsgi_apps:django_app()'

The Django project is :mod:`tests.support.django_settings` and
:mod:`tests.support.django_urls`. Each factory imports only its own framework, so
a worker loads one of them. Nothing here starts a cluster member: the adapters
start one per process with its first request, after a pre-forking server forked.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from clustersession import ClusterConfig, Session

from .app import node_info

if TYPE_CHECKING:
    from flask import Flask

DJANGO_SETTINGS = "tests.support.django_settings"


def flask_app() -> Flask:
    """The Flask app, its cluster configured from the environment (a gunicorn factory)."""
    from flask import Flask, Response, current_app, jsonify, request, session

    from clustersession.flask import ClusterSessionInterface, admin

    config = ClusterConfig.from_env()
    app = Flask("clustersession_test")
    interface = ClusterSessionInterface(config)
    interface.init_app(app)  # the session, the probes/metrics/status paths, the admin

    def current() -> Session:
        assert isinstance(session, Session)  # flask.session proxies ours, isinstance included
        return session

    @app.get("/")
    def view() -> Response:
        return jsonify(dict(session))

    @app.post("/update")
    def update() -> Response:
        session.update(request.get_json(force=True))
        return jsonify(dict(session))

    @app.post("/append/<item>")
    def append(item: str) -> Response:
        session.setdefault("items", []).append(item)
        return jsonify(dict(session))

    @app.post("/call/<method>")
    def call(method: str) -> str:
        ours = current()
        getattr(ours, method)()
        return ours.id if ours else ""

    @app.get("/original")
    def original() -> Response:
        session.get("x")  # opening the session is what re-routes it
        key = config.valves.route_binder.session_id_attribute
        return jsonify({"original": request.environ.get(key)})

    @app.get("/node")
    def node() -> Response:
        return jsonify({"route": config.jvm_route, "pid": os.getpid(), "session": dict(session)})

    @app.get("/health")
    def health() -> Response:
        return jsonify(node_info(interface.manager.view(), config.jvm_route))

    @app.post("/login/<user>")
    def login(user: str) -> Response:
        session["user"] = user
        return jsonify(dict(session))

    @app.get("/admin/of/<user>")
    def sessions_of(user: str) -> Response:
        cluster = admin(current_app)
        return jsonify({"ids": [info.id for info in cluster.sessions_of(user)]})

    @app.post("/admin/logout/<user>")
    def logout_everywhere(user: str) -> Response:
        return jsonify({"invalidated": admin(current_app).invalidate_principal(user)})

    @app.get("/primary")
    def primary() -> Response:
        session.get("x")  # opening the session is what sets the indicator
        name = config.valves.replication.primary_indicator_name
        return jsonify({"primary": request.environ.get(name)})

    return app


def django_app() -> Any:
    """Django's WSGI handler for :data:`DJANGO_SETTINGS` (a gunicorn factory)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DJANGO_SETTINGS)
    from django.core.wsgi import get_wsgi_application  # sets Django up, from the settings

    from clustersession.django import with_operations

    return with_operations(get_wsgi_application())
