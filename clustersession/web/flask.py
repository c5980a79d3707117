"""``ClusterSessionInterface``: the cluster session as Flask's ``flask.session``.

A Flask ``SessionInterface`` around :class:`~.front.SessionFront`, so a Flask
node reads and writes the same cookie and sessions as the ASGI and WSGI
middlewares (a mixed cluster). The manager runs on its own event loop thread
(:class:`~clustersession.sessions.threaded.ManagerThread`), started by the first
request of the serving process: nothing is started before a pre-forking server
(gunicorn) forks.

Flask's settings give the cookie (``SESSION_COOKIE_*``) and, for
``session.permanent`` sessions, its Max-Age (``PERMANENT_SESSION_LIFETIME``).
Flask reads them per request, so they are read when the first request comes,
not when the interface is built, and read again whenever they change.

Only this module imports flask (an import-linter contract keeps it so): flask is
an optional extra, and the core runs without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from flask import Flask
from flask.sessions import SessionInterface, SessionMixin
from flask.wrappers import Request, Response

from ..config import ClusterConfig
from ..sessions.ids import SessionIds
from ..sessions.listeners import SessionListener
from ..sessions.manager import Manager
from ..sessions.managers import manager_for
from ..sessions.session import Session
from ..sessions.threaded import ManagerThread
from .cookies import SameSite, SessionCookie
from .farm import farm_for
from .front import SessionFront
from .wsgi_admin import ADMIN_ENVIRON_KEY, WSGISessionAdmin
from .wsgi_operations import WSGIApp, WSGIOperations

EXTENSION_NAME = "clustersession"
"""The ``app.extensions`` key of the :class:`WSGISessionAdmin` (set by ``init_app``)."""

# Flask spells SameSite "Lax"/"Strict"/"None"; the cookie is written as every other
# adapter writes it (lower case), so all nodes of a mixed cluster send the same one.
_SAME_SITE: dict[str, SameSite] = {"lax": "lax", "strict": "strict", "none": "none"}


class FlaskSession(Session, SessionMixin):
    """``flask.session``: a :class:`~clustersession.Session` with Flask's ``SessionMixin``.

    ``modified`` and ``accessed`` are the :class:`Session`'s own flags (it comes
    first in the MRO, so the mixin's class defaults never show); Flask's request
    context sets ``accessed`` whenever ``flask.session`` is touched, which only
    adds ``Vary: Cookie``. Setting ``modified = True`` is never needed (in-place
    changes are found at the end of the request) and harmless: it sends the cookie
    again and refreshes the session's access time. ``new`` is :attr:`is_new`.
    ``permanent`` is Flask's ``"_permanent"`` key, so it is stored and replicated
    with the session as Flask extensions expect.
    """

    _request_path = ""
    _opened_with: _AppFront | None = None

    # The mixin's class-level False says "cannot tell"; we can.
    @property
    def new(self) -> bool:  # type: ignore[override]
        """Whether the session was started by this request (Flask's name for :attr:`is_new`)."""
        return self.is_new

    @property
    def permanent(self) -> bool:
        """Whether the cookie outlives the browser (Max-Age ``PERMANENT_SESSION_LIFETIME``)."""
        return bool(self.get("_permanent", False))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        # "Not permanent" is the default: saying so again writes nothing, so an app
        # that sets it on every request does not start a session for every visitor.
        if not value and not self.peek("_permanent", False):
            return
        self["_permanent"] = bool(value)

    def _is_permanent(self) -> bool:
        # For the interface: reading through get() would count as a read by the app.
        return bool(self.peek("_permanent", False))


@dataclass(frozen=True, slots=True)
class _AppSettings:
    """What the front is built from: the secret and Flask's session settings."""

    secret: str | bytes | None
    previous: tuple[str | bytes, ...]
    name: str
    domain: str | None
    path: str
    secure: bool
    httponly: bool
    same_site: SameSite | None
    partitioned: bool
    lifetime: int
    refresh: bool

    def cookie(self, max_age: int | None) -> SessionCookie:
        """The session cookie with these attributes (``max_age=None``: a browser-session one)."""
        return SessionCookie(
            self.name,
            max_age=max_age,
            path=self.path,
            same_site=self.same_site,
            https_only=self.secure,
            domain=self.domain,
            partitioned=self.partitioned,
            httponly=self.httponly,
        )


@dataclass(frozen=True, slots=True)
class _AppFront:
    """The front built from one app's settings, and the settings it was built from."""

    settings: _AppSettings
    front: SessionFront
    permanent_cookie: SessionCookie
    raw: tuple[Any, ...]
    """What the settings were made from, as read from the app (compared per request)."""


class ClusterSessionInterface(SessionInterface):
    """Server-side, optionally replicated ``flask.session``.

    ``app.session_interface = ClusterSessionInterface(config)``. The cookie holds
    only the signed session id (``token.jvm_route``); its name and attributes are
    Flask's ``SESSION_COOKIE_*`` settings. Ids are signed with ``config.secret``
    when the config has one (so Flask, ASGI and WSGI nodes sharing a config accept
    each other's cookies), else with ``app.secret_key``; without a config the app
    needs a ``secret_key``.

    Idle timeout (server side): with ``config``, ``config.manager.max_inactive_interval``
    (Tomcat's session-timeout), for every session. Without, ``PERMANENT_SESSION_LIFETIME``,
    the bound Flask's own cookie sessions have whether permanent or not (zero or
    less: nothing outlives its request). Cookie: a permanent session's has
    ``Max-Age=PERMANENT_SESSION_LIFETIME`` (sent again on every request while
    ``SESSION_REFRESH_EACH_REQUEST``, so it slides); others' have no Max-Age and
    end with the browser.

    With ``config.distributable`` every session is replicated to every member; a
    request whose path fully matches ``valves.replication.filter`` sends nothing;
    a re-routed session's original id is in ``request.environ`` under
    ``valves.route_binder.session_id_attribute``. ``listeners`` are
    :class:`SessionListener` instances. One interface is one cluster member per
    process (:attr:`manager`); build one per app.
    """

    def __init__(
        self, config: ClusterConfig | None = None, *, listeners: Sequence[SessionListener] = ()
    ) -> None:
        self.config = config
        self._settings = config if config is not None else ClusterConfig()
        self._listeners = tuple(listeners)
        self._app_front: _AppFront | None = None
        self.manager = ManagerThread(self._new_manager, companion=farm_for(self._settings))
        """This process's manager (and farm deployer, with ``[deployer]``): started by the
        first request, stopped at exit."""
        limited = self._settings.manager.max_active_sessions >= 0
        self._may_create = self.manager.may_create if limited else None
        self.operations = WSGIOperations.build(self._settings, self.manager)
        """Probes, metrics and the status page; :meth:`init_app` puts them in front of the app."""
        self.admin = WSGISessionAdmin(self.manager, self._settings)
        """The admin API over this interface's manager (``clustersession.flask.admin(app)``)."""

    def init_app(self, app: Flask) -> None:
        """Install on ``app``: its session interface, the operational endpoints, the admin.

        The endpoints (``valves.health``, ``metrics.path``, ``valves.status``) are
        answered in front of Flask's routing; the admin is
        ``app.extensions["clustersession"]``.
        """
        app.session_interface = self
        # Flask types start_response with wsgiref's spelling of the same PEP 3333 callable.
        wrapped = self.operations.wrap(cast(WSGIApp, app.wsgi_app))
        app.wsgi_app = cast(Any, wrapped)  # type: ignore[method-assign]
        app.extensions[EXTENSION_NAME] = self.admin

    def _new_manager(self) -> Manager:
        # Called by the first request, after it read the app's settings.
        app_front = self._app_front
        idle = (
            app_front.front.idle_timeout
            if app_front is not None
            else self._settings.manager.max_inactive_interval
        )
        return manager_for(self._settings, listeners=self._listeners, idle_timeout=idle)

    # -- Flask's SessionInterface ----------------------------------------------

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        """The session the request's cookie names, or a new, empty one (bogus cookies too)."""
        app_front = self._front_for(app)
        front, manager = app_front.front, self.manager
        header = request.environ.get("HTTP_COOKIE")
        # The front reads raw headers; a WSGI environ holds them decoded as latin-1.
        raw = [] if header is None else [(b"cookie", header.encode("latin-1", "replace"))]
        session, original_id, primary = front.open(
            front.cookie.read(raw),
            manager.open,
            now=manager.clock(),
            may_create=self._may_create,
            fetch=manager.fetcher,
        )
        assert isinstance(session, FlaskSession)  # the front's session_class
        session._request_path = request.path
        session._opened_with = app_front
        if original_id is not None:
            request.environ[front.original_id_key] = original_id
        if primary is not None:
            request.environ[front.primary_indicator_name] = primary
        # As the other adapters: for apps that show the cluster (``.manager.view()``).
        request.environ["clustersession"] = self
        request.environ[ADMIN_ENVIRON_KEY] = self.admin
        return session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Set the response's cookie and commit the request's changes.

        Flask calls this before the response goes out, so the commit waits as the
        send option asks (with options 2 and 6 until the members have the changes)
        and the client's next request finds its writes. What a streamed response's
        generator writes to the session afterwards is not saved (as with Flask's
        own cookie sessions).
        """
        if not isinstance(session, FlaskSession) or session._opened_with is None:
            return  # not one this interface opened: nothing of ours to save
        app_front = session._opened_with
        front = app_front.front
        permanent = session._is_permanent()
        action = front.cookie_action(
            session,
            cookie=app_front.permanent_cookie if permanent else None,
            refresh=permanent and app_front.settings.refresh,
        )
        if action is not None:
            response.vary.add("Cookie")
            if action.set_cookie is not None:
                # As the other adapters write it, not through set_cookie(): one cookie
                # format for every node of a mixed cluster.
                response.headers.add("Set-Cookie", action.set_cookie)
        commit = front.commit(session, session._request_path, now=self.manager.clock())
        if commit is not None:
            self.manager.commit(commit.deltas, replicate=commit.replicate)
            self.admin.enforce_limit(commit.deltas)

    # -- the app's settings ----------------------------------------------------

    def _front_for(self, app: Flask) -> _AppFront:
        """The front for ``app``'s current settings, built again when they changed."""
        secret = self._settings.secret or app.secret_key
        if not secret and self.config is None:
            raise RuntimeError(
                "ClusterSessionInterface needs a secret to sign session ids: set "
                "app.secret_key (SECRET_KEY), or pass a ClusterConfig with a secret"
            )
        # Read per request, as Flask does (through the getters, which an app may
        # override); the front is rebuilt only when one of them changed.
        fallbacks = app.config.get("SECRET_KEY_FALLBACKS")
        raw = (
            secret,
            tuple(fallbacks) if fallbacks else (),
            self.get_cookie_name(app),
            self.get_cookie_domain(app),
            self.get_cookie_path(app),
            self.get_cookie_secure(app),
            self.get_cookie_httponly(app),
            self.get_cookie_samesite(app),
            self.get_cookie_partitioned(app),
            app.permanent_session_lifetime,
            app.config["SESSION_REFRESH_EACH_REQUEST"],
        )
        current = self._app_front
        if current is not None and current.raw == raw:
            return current
        (secret, fallbacks, name, domain, path, secure, httponly, same_site, partitioned,
         permanent_lifetime, refresh) = raw  # fmt: skip
        # Ids signed with a secret being rotated out still verify: the config's previous
        # secrets, or Flask's SECRET_KEY_FALLBACKS when app.secret_key signs.
        previous = self._settings.previous_secrets if self._settings.secret else fallbacks
        settings = _AppSettings(
            secret=secret,
            previous=previous,
            name=name,
            domain=domain,
            path=path,
            secure=secure,
            httponly=httponly,
            same_site=_same_site(same_site),
            partitioned=partitioned,
            lifetime=int(permanent_lifetime.total_seconds()),
            refresh=bool(refresh),
        )
        # Two threads may both get here; they build equal fronts and either one serves.
        config, lifetime = self.config, settings.lifetime
        front = SessionFront(
            SessionIds(settings.secret, self._settings.jvm_route, settings.previous),
            settings.cookie(None),  # not permanent: a browser-session cookie
            self._settings,
            idle_timeout=config.manager.max_inactive_interval if config else lifetime,
            # Flask refuses its own cookies once older than a non-positive lifetime.
            expire_at_once=config is None and lifetime <= 0,
            session_class=FlaskSession,
        )
        current = _AppFront(settings, front, settings.cookie(settings.lifetime), raw)
        self._app_front = current
        return current


def admin(app: Flask) -> WSGISessionAdmin:
    """``app``'s session admin (in a view: ``admin(current_app)``)."""
    found = app.extensions.get(EXTENSION_NAME)
    if isinstance(found, WSGISessionAdmin):
        return found
    interface = app.session_interface
    if isinstance(interface, ClusterSessionInterface):
        return interface.admin
    raise RuntimeError("no clustersession admin: is ClusterSessionInterface the app's interface?")


def _same_site(value: str | None) -> SameSite | None:
    """Flask's ``SESSION_COOKIE_SAMESITE`` as the cookie writes it (``None``: no attribute)."""
    if value is None:
        return None
    same_site = _SAME_SITE.get(value.lower())
    if same_site is None:
        raise ValueError(
            f"SESSION_COOKIE_SAMESITE must be 'Lax', 'Strict', 'None' or None, not {value!r}"
        )
    return same_site
