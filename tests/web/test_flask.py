"""The Flask session interface: the middlewares' sessions as ``flask.session``, in process."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify, request, session
from flask.sessions import SessionMixin
from flask.testing import FlaskClient
from flask.wrappers import Response
from starlette.middleware.sessions import Session as StarletteSession

from clustersession import (
    AttributeEvent,
    ClusterConfig,
    Session,
    SessionListener,
    TooManyActiveSessions,
)
from clustersession.flask import ClusterSessionInterface, FlaskSession
from clustersession.sessions.ids import SessionIds
from clustersession.sessions.manager import Opened
from clustersession.wsgi import ENVIRON_KEY as WSGI_ENVIRON_KEY
from clustersession.wsgi import ClusterSessionWSGIMiddleware

SECRET = "flask-test-secret-key"
CONFIG_SECRET = "cluster-config-secret-0123"
ROUTE = "node1"


def _body() -> Response:
    return jsonify({"id": session.id if session else None, **session})  # type: ignore[attr-defined]


def make_app(interface: ClusterSessionInterface, secret_key: str | None = SECRET) -> Flask:
    """/set?k=v, /get, /append?v=, /bad, /invalidate, /regenerate, /permanent, /info, ..."""
    app = Flask(__name__)
    app.secret_key = secret_key
    app.testing = True
    app.session_interface = interface

    @app.get("/set")
    @app.get("/nosync/set")
    def set_values() -> Response:
        for key, value in request.args.items():
            session[key] = value
        return _body()

    @app.get("/get")
    def get() -> Response:
        return _body()

    @app.get("/append")
    def append() -> Response:
        session.setdefault("items", [])
        session["items"].append(request.args["v"])  # in place: no session.modified = True
        return _body()

    @app.get("/bad")
    def bad() -> tuple[str, int]:
        try:
            session["bad"] = object()
        except TypeError as exc:
            return str(exc), 400
        return "stored", 200

    @app.get("/invalidate")
    def invalidate() -> Response:
        session.invalidate()  # type: ignore[attr-defined]
        return _body()

    @app.get("/regenerate")
    def regenerate() -> Response:
        session.regenerate_id()  # type: ignore[attr-defined]
        return _body()

    @app.get("/permanent")
    def permanent() -> Response:
        session.permanent = request.args.get("on", "1") == "1"
        return _body()

    @app.get("/modified")
    def modified() -> Response:
        session.modified = True
        return _body()

    @app.get("/info")
    def info() -> Response:
        ours = session._get_current_object()  # type: ignore[attr-defined]
        assert isinstance(ours, FlaskSession)
        original = interface._settings.valves.route_binder.session_id_attribute
        return jsonify(
            {
                "new": ours.new,
                "is_new": ours.is_new,
                "modified": ours.modified,
                "permanent": ours.permanent,
                "max_inactive_interval": ours.max_inactive_interval,
                "original_id": request.environ.get(original),
                "interface": request.environ["clustersession"] is interface,
            }
        )

    @app.get("/login")
    def login() -> tuple[str, int]:
        try:
            session["user"] = "dan"
        except TooManyActiveSessions:
            return "busy, try later", 503
        return "in", 200

    return app


Build = Callable[..., tuple[Flask, ClusterSessionInterface]]


@pytest.fixture
def build() -> Iterator[Build]:
    """Builds apps; stops every interface's manager thread afterwards."""
    built: list[ClusterSessionInterface] = []

    def _build(
        config: ClusterConfig | None = None,
        *,
        secret_key: str | None = SECRET,
        listeners: tuple[SessionListener, ...] = (),
        **settings: Any,
    ) -> tuple[Flask, ClusterSessionInterface]:
        interface = ClusterSessionInterface(config, listeners=listeners)
        built.append(interface)
        app = make_app(interface, secret_key)
        app.config.update(settings)
        return app, interface

    yield _build
    for interface in built:
        interface.manager.stop()


@pytest.fixture
def client(build: Build) -> FlaskClient:
    app, _ = build(ClusterConfig(jvm_route=ROUTE))
    return app.test_client()


def send(app: Flask, path: str, cookie: str) -> Any:
    """A request with exactly this session cookie (a cookie-jar client would drop it)."""
    return app.test_client(use_cookies=False).get(path, headers={"Cookie": f"session={cookie}"})


def cookie_value(response: Any) -> str:
    match = re.match(r"[^=]+=([^;]*)", response.headers["Set-Cookie"])
    assert match is not None
    return match.group(1)


# -- the session ---------------------------------------------------------------


def test_a_write_is_read_back_and_the_cookie_holds_only_the_id(client: FlaskClient) -> None:
    first = client.get("/set?colour=blue")
    sid = first.json["id"]  # type: ignore[index]
    assert first.json == {"id": sid, "colour": "blue"}
    # Flask's defaults: HttpOnly, no SameSite, no Max-Age (not permanent).
    assert first.headers["Set-Cookie"] == f"session={sid}; path=/; httponly"
    assert re.fullmatch(r"[A-Za-z0-9_-]{44}\.node1", sid)
    assert first.headers["Vary"] == "Cookie"
    again = client.get("/get")
    assert again.json == {"id": sid, "colour": "blue"}
    assert "Set-Cookie" not in again.headers
    assert again.headers["Vary"] == "Cookie"  # the session was read


def test_nothing_starts_before_the_first_request(build: Build) -> None:
    app, interface = build()
    assert not interface.manager.running  # a pre-forking server forks after this
    app.test_client().get("/get")
    assert interface.manager.running


def test_no_write_no_session_and_no_cookie(client: FlaskClient) -> None:
    response = client.get("/get")
    assert response.json == {"id": None}
    assert "Set-Cookie" not in response.headers
    # Saying "not permanent" (the default) or "modified" writes nothing either.
    for path in ("/permanent?on=0", "/modified"):
        response = client.get(path)
        assert response.json == {"id": None} and "Set-Cookie" not in response.headers


def test_nested_changes_are_saved(client: FlaskClient) -> None:
    client.get("/append?v=a")
    assert client.get("/append?v=b").json["items"] == ["a", "b"]  # type: ignore[index]
    assert client.get("/get").json["items"] == ["a", "b"]  # type: ignore[index]


def test_modified_true_does_no_harm(client: FlaskClient) -> None:
    sid = client.get("/set?k=v").json["id"]  # type: ignore[index]
    response = client.get("/modified")
    assert response.json == {"id": sid, "k": "v"}
    assert cookie_value(response) == sid  # sent again, same id
    assert client.get("/get").json == {"id": sid, "k": "v"}


def test_the_session_keeps_flasks_session_mixin_contract(client: FlaskClient) -> None:
    first = client.get("/info").json
    assert first is not None and first["new"] is True and first["modified"] is False
    client.get("/set?k=v")
    later = client.get("/info").json
    assert later is not None and later["new"] is False and later["is_new"] is False
    assert later["interface"] is True


def test_session_mixin_names_do_not_clash_with_ours() -> None:
    assert issubclass(FlaskSession, Session) and issubclass(FlaskSession, SessionMixin)
    mixin = {name for name in vars(SessionMixin) if not name.startswith("_")}
    assert mixin == {"permanent", "new", "modified", "accessed"}
    ours = {name for cls in Session.__mro__[:-2] for name in vars(cls)}  # minus dict, object
    # Only Starlette's two flags are in both, and Starlette's win (mixin: modified=True).
    assert mixin & ours == {"modified", "accessed"}
    mro = FlaskSession.__mro__
    assert mro.index(StarletteSession) < mro.index(SessionMixin)
    # Session keeps the flags in slots, set per instance: a new session's are Starlette's.
    fresh = FlaskSession(SessionIds(SECRET, ROUTE), None, default_max_inactive_interval=60, now=0.0)
    assert fresh.modified is False and fresh.accessed is False


def test_session_transaction_of_the_test_client(client: FlaskClient) -> None:
    with client.session_transaction() as prepared:
        prepared["user"] = "ann"
    assert client.get("/get").json["user"] == "ann"  # type: ignore[index]


def test_an_unserialisable_value_names_key_and_type(client: FlaskClient) -> None:
    response = client.get("/bad")
    assert response.status_code == 400
    assert "'bad'" in response.text and "object" in response.text


class Events(SessionListener):
    def __init__(self) -> None:
        self.added: list[str] = []

    def attribute_added(self, event: AttributeEvent) -> None:
        self.added.append(event.name)


def test_listeners_are_told(build: Build) -> None:
    events = Events()
    app, interface = build(listeners=(events,))
    app.test_client().get("/set?colour=blue")
    interface.manager.flush()  # async mode: the commit is queued, nothing waits for it
    assert events.added == ["colour"]


# -- cookies ---------------------------------------------------------------------


def test_cookie_attributes_come_from_flasks_settings(build: Build) -> None:
    app, _ = build(
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_DOMAIN="example.org",
        SESSION_COOKIE_PATH="/app",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=False,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PARTITIONED=True,
    )
    response = app.test_client().get("/set?k=v")
    sid = response.json["id"]  # type: ignore[index]
    assert response.headers["Set-Cookie"] == (
        f"sid={sid}; path=/app; samesite=strict; secure; domain=example.org; partitioned"
    )


def test_settings_changed_between_requests_apply_to_the_next(build: Build) -> None:
    app, _ = build()
    client = app.test_client(use_cookies=False)
    sid = client.get("/set?k=v").json["id"]  # type: ignore[index]
    app.config["SESSION_COOKIE_NAME"] = "sid"
    response = client.get("/set?k=w", headers={"Cookie": f"sid={sid}"})
    assert response.json["id"] == sid  # type: ignore[index]
    assert response.headers["Set-Cookie"].startswith(f"sid={sid};")
    # A new secret, the old one a fallback: ids it signed still open the session.
    app.config["SECRET_KEY_FALLBACKS"] = [SECRET]
    app.secret_key = "a-newer-flask-secret-key"
    response = client.get("/get", headers={"Cookie": f"sid={sid}"})
    assert response.json == {"id": sid, "k": "w"}


def test_the_cookie_path_falls_back_to_application_root(build: Build) -> None:
    app, _ = build(APPLICATION_ROOT="/shop", SESSION_COOKIE_SAMESITE="Lax")
    response = app.test_client().get("/set?k=v")
    assert "; path=/shop; httponly; samesite=lax" in response.headers["Set-Cookie"]


def test_an_unknown_samesite_is_an_error(build: Build) -> None:
    app, _ = build(SESSION_COOKIE_SAMESITE="Sideways")
    with pytest.raises(ValueError, match="SESSION_COOKIE_SAMESITE"):
        app.test_client().get("/get")


def test_a_permanent_session_has_a_max_age_that_slides(build: Build) -> None:
    app, _ = build(PERMANENT_SESSION_LIFETIME=timedelta(hours=2))
    client = app.test_client()
    made = client.get("/permanent")
    sid = made.json["id"]  # type: ignore[index]
    assert made.headers["Set-Cookie"] == f"session={sid}; path=/; Max-Age=7200; httponly"
    # SESSION_REFRESH_EACH_REQUEST (Flask's default): every request sends it again.
    again = client.get("/get")
    assert again.headers["Set-Cookie"] == made.headers["Set-Cookie"]
    # No longer permanent: a browser-session cookie again.
    ended = client.get("/permanent?on=0")
    assert ended.headers["Set-Cookie"] == f"session={sid}; path=/; httponly"
    assert "Set-Cookie" not in client.get("/get").headers


def test_without_refresh_each_request_a_permanent_cookie_is_sent_when_changed(
    build: Build,
) -> None:
    app, _ = build(SESSION_REFRESH_EACH_REQUEST=False)
    client = app.test_client()
    assert "Max-Age=2678400" in client.get("/permanent").headers["Set-Cookie"]  # 31 days
    assert "Set-Cookie" not in client.get("/get").headers
    assert "Max-Age=2678400" in client.get("/set?k=v").headers["Set-Cookie"]


def test_without_config_the_lifetime_is_the_idle_timeout(build: Build) -> None:
    app, _ = build(PERMANENT_SESSION_LIFETIME=timedelta(hours=3))
    client = app.test_client()
    client.get("/set?k=v")
    assert client.get("/info").json["max_inactive_interval"] == 3 * 3600  # type: ignore[index]


def test_with_config_max_inactive_interval_is_the_idle_timeout(build: Build) -> None:
    config = ClusterConfig(jvm_route=ROUTE)
    config = replace(config, manager=replace(config.manager, max_inactive_interval=600))
    app, _ = build(config, PERMANENT_SESSION_LIFETIME=timedelta(hours=3))
    client = app.test_client()
    made = client.get("/permanent")
    assert "Max-Age=10800" in made.headers["Set-Cookie"]  # the cookie is Flask's to set
    assert client.get("/info").json["max_inactive_interval"] == 600  # type: ignore[index]


def test_a_non_positive_lifetime_without_config_keeps_nothing(build: Build) -> None:
    app, _ = build(PERMANENT_SESSION_LIFETIME=0)
    client = app.test_client()
    client.get("/set?k=v")
    assert client.get("/get").json == {"id": None}


# -- bogus and retired cookies ---------------------------------------------------


def forged() -> str:
    return SessionIds("someone-elses-secret-key", ROUTE).new_token() + "." + ROUTE


@pytest.mark.parametrize(
    "cookie",
    ["garbage", "a" * 5000, "x.y.z", "A" * 22 + "." + ROUTE, "", "forged"],
)
def test_a_bogus_cookie_gives_an_empty_session(build: Build, cookie: str) -> None:
    app, _ = build(ClusterConfig(jvm_route=ROUTE))
    value = forged() if cookie == "forged" else cookie
    response = send(app, "/get", value)
    assert response.status_code == 200 and response.json == {"id": None}
    assert "Set-Cookie" not in response.headers


def test_invalidate_clears_the_cookie_and_the_old_id_stays_dead(client: FlaskClient) -> None:
    old = cookie_value(client.get("/set?k=v"))
    cleared = client.get("/invalidate")
    assert cleared.headers["Set-Cookie"].startswith("session=null; path=/; expires=Thu, 01 Jan")
    replay = send(client.application, "/set?k=again", old)
    assert "Set-Cookie" not in replay.headers  # a retired id starts nothing
    assert send(client.application, "/get", old).json == {"id": None}


def test_regenerate_id_moves_the_data_and_retires_the_old_id(client: FlaskClient) -> None:
    first = client.get("/set?k=v")
    old = cookie_value(first)
    renamed = client.get("/regenerate")
    assert renamed.json is not None and renamed.json["k"] == "v"
    assert renamed.json["id"] != old and cookie_value(renamed) == renamed.json["id"]
    assert send(client.application, "/get", old).json == {"id": None}


def test_a_cookie_with_another_route_is_given_the_current_id(client: FlaskClient) -> None:
    sid = cookie_value(client.get("/set?k=v"))
    token = sid.rsplit(".", 1)[0]
    response = send(client.application, "/get", f"{token}.elsewhere")
    assert response.json == {"id": sid, "k": "v"}
    assert cookie_value(response) == sid


def test_a_rerouted_session_exposes_its_original_id(
    build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a DeltaManager re-routes (the session's node is gone); its answer is faked.
    app, interface = build(ClusterConfig(jvm_route=ROUTE))
    client = app.test_client()
    sid = cookie_value(client.get("/set?k=v"))
    opener = interface.manager.open

    def rerouted(token: str) -> Opened:
        return replace(opener(token), rerouted=True)

    monkeypatch.setattr(interface.manager, "open", rerouted)
    assert client.get("/info").json["original_id"] == sid  # type: ignore[index]


# -- secrets ----------------------------------------------------------------------


def test_app_secret_key_signs_ids_without_a_config_secret(build: Build) -> None:
    app, _ = build(ClusterConfig(jvm_route=ROUTE), secret_key=SECRET)
    sid = cookie_value(app.test_client().get("/set?k=v"))
    assert SessionIds(SECRET, ROUTE).parse(sid) is not None
    assert SessionIds(CONFIG_SECRET, ROUTE).parse(sid) is None


def test_a_config_secret_signs_ids_whatever_the_app_secret_key(build: Build) -> None:
    app, _ = build(ClusterConfig(jvm_route=ROUTE, secret=CONFIG_SECRET), secret_key=SECRET)
    sid = cookie_value(app.test_client().get("/set?k=v"))
    assert SessionIds(CONFIG_SECRET, ROUTE).parse(sid) is not None
    assert SessionIds(SECRET, ROUTE).parse(sid) is None


def test_a_bytes_secret_key_signs_too(build: Build) -> None:
    app, _ = build()
    app.secret_key = SECRET.encode()
    sid = cookie_value(app.test_client().get("/set?k=v"))
    assert SessionIds(SECRET, None).parse(sid) is not None


def test_neither_config_nor_secret_key_is_an_error(build: Build) -> None:
    app, _ = build(secret_key=None)
    with pytest.raises(RuntimeError, match=r"app\.secret_key"):
        app.test_client().get("/get")


def test_a_mixed_cluster_shares_cookies_signed_with_the_config_secret(build: Build) -> None:
    # A WSGI node and a Flask node (whose own secret_key differs) with one config.
    # One manager stands in for the replication that shares sessions between nodes.
    config = ClusterConfig(jvm_route=ROUTE, secret=CONFIG_SECRET)
    app, interface = build(config, secret_key="the-flask-apps-own-key")

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ[WSGI_ENVIRON_KEY]["from"] = "wsgi"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    wsgi = ClusterSessionWSGIMiddleware(wsgi_app, config=config)
    try:
        interface.manager = wsgi.manager
        with httpx.Client(transport=httpx.WSGITransport(app=wsgi), base_url="http://t") as c:
            sid = c.get("/").cookies["session"]
        read = send(app, "/set?to=flask", sid)
        assert read.json == {"id": sid, "from": "wsgi", "to": "flask"}
    finally:
        wsgi.manager.stop()


# -- the cluster's valves and limits -----------------------------------------------


def test_requests_matching_the_replication_filter_do_not_replicate(
    build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ClusterConfig(jvm_route=ROUTE)
    replication = replace(base.valves.replication, filter=r"/nosync/.*")
    app, interface = build(replace(base, valves=replace(base.valves, replication=replication)))
    commits: list[bool] = []
    commit = interface.manager.commit

    def recording(deltas: Any, *, replicate: bool = True) -> None:
        commits.append(replicate)
        commit(deltas, replicate=replicate)

    monkeypatch.setattr(interface.manager, "commit", recording)
    client = app.test_client()
    client.get("/set?a=1")
    client.get("/nosync/set?b=2")
    assert commits == [True, False]
    assert client.get("/get").json["b"] == "2"  # type: ignore[index]  # stored here all the same


def test_too_many_active_sessions_refuses_a_new_session(build: Build) -> None:
    config = ClusterConfig(jvm_route=ROUTE)
    config = replace(config, manager=replace(config.manager, max_active_sessions=1))
    app, _ = build(config)
    first, second = app.test_client(), app.test_client()
    assert first.get("/login").text == "in"
    refused = second.get("/login")
    assert (refused.status_code, refused.text) == (503, "busy, try later")
    assert "Set-Cookie" not in refused.headers
    assert first.get("/set?cart=1").json["user"] == "dan"  # type: ignore[index]
