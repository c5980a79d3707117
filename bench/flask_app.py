"""The Flask app of the WSGI rows: ``bench.app``'s endpoints on ``flask.session``.

Served by gunicorn as ``bench.flask_app:create_app()``, the session interface
named in ``$BENCH_VARIANT``:

* ``flask-cookie``: Flask's default ``SecureCookieSessionInterface`` (the whole
  session signed into the cookie): the baseline.
* ``flask-ours``: ``ClusterSessionInterface()`` signing ids with ``app.secret_key``,
  one node (sessions in this process's memory).
* ``flask-cluster``: ``ClusterSessionInterface(ClusterConfig.from_env())``, a
  distributable member configured by the ``CLUSTERSESSION_*`` variables.
* ``flask-local``: ``ClusterSessionInterface(ClusterConfig.from_env())`` without
  ``CLUSTERSESSION_DISTRIBUTABLE``: the non-distributable twin ``bench.workers`` compares
  the cluster's memory with.

Ours also answer ``/bench/stats`` (this worker's pid, sessions held, members seen), so
the runs can wait for the cluster to form and count what each worker holds.
"""

from __future__ import annotations

import os
from typing import Any, Final

from flask import Flask, Response, jsonify, session

from bench.wrk import realistic_session

FLASK_VARIANTS: Final = ("flask-cookie", "flask-ours", "flask-cluster", "flask-local")
VARIANT_ENV: Final = "BENCH_VARIANT"
SECRET: Final = "bench-wsgi-secret-not-for-production"


def create_app() -> Flask:
    """The app for ``$BENCH_VARIANT`` (gunicorn ``'bench.flask_app:create_app()'``)."""
    variant = os.environ.get(VARIANT_ENV, "")
    if variant not in FLASK_VARIANTS:
        raise RuntimeError(f"${VARIANT_ENV} must be one of {FLASK_VARIANTS}, got {variant!r}")
    app = Flask(__name__)
    app.secret_key = SECRET
    interface = None
    if variant != "flask-cookie":
        # Imported here so the cookie baseline never loads our package.
        from clustersession import ClusterConfig
        from clustersession.flask import ClusterSessionInterface

        config = ClusterConfig.from_env() if variant in ("flask-cluster", "flask-local") else None
        interface = ClusterSessionInterface(config)
        app.session_interface = interface

    @app.get("/ping")
    def ping() -> str:
        return "pong"  # the readiness probe: leaves the session alone

    @app.get("/login")
    def login() -> str:
        session.update(realistic_session())
        return "ok"

    @app.get("/read")
    def read() -> Response:
        return jsonify(
            user=session["display_name"],
            admin="admin" in session["roles"],
            items=len(session["cart"]),
        )

    @app.get("/write")
    def write() -> Response:
        session["counter"] = session.get("counter", 0) + 1
        return jsonify(user_id=session["user_id"], counter=session["counter"])

    @app.get("/bench/stats")
    def stats() -> Response:
        body: dict[str, Any] = {"pid": os.getpid(), "sessions": None, "members": 0}
        if interface is not None:
            view = interface.manager.view()
            body.update(sessions=view.sessions, members=len(view.members))
        return jsonify(body)

    return app
