"""The Django session engine: ``SESSION_ENGINE = "clustersession.django"``.

Django's ``SessionMiddleware`` builds one :class:`SessionStore` per request from
the cookie and, at the end, saves it when it reports ``modified`` and sets the
cookie to its ``session_key``. This store is I/O around the same
:class:`~.front.SessionFront` the ASGI and WSGI middlewares use: the
``session_key`` is our signed id ``token.route``, the data is a
:class:`~clustersession.sessions.session.Session` held by the process's manager
(replicated when the config is distributable), so a cookie written by one adapter
is read by every other of the cluster.

What Django's contract leaves open, and what this engine does:

* ``modified`` reports real changes, so ``request.session["cart"].append(x)`` is
  saved without ``request.session.modified = True``.
* A read-only request still counts as activity: stores a request loaded are
  remembered from Django's ``request_started`` to ``request_finished`` signal, and
  those the middleware did not save commit their access time then (and the
  destruction of a session the request emptied: an empty session is no session).
* An empty session is not stored: ``create()`` reserves a key that becomes real
  when the session holds data, and an emptied session is destroyed.
* ``set_expiry(n)`` with ``n > 0`` is also the session's idle timeout on the
  server (``max_inactive_interval``); ``0`` (browser close), ``None`` and
  negatives leave the configured ``manager.max_inactive_interval``; a date or
  timedelta becomes an idle timeout of the seconds left, and the session is
  refused once the date has passed. The cookie's age follows Django's rules.
* ``clear_expired()`` (``manage.py clearsessions``) sweeps this process's manager
  if it runs; every member sweeps itself in the background anyway, so in a
  process of its own (the management command) it has nothing to do.

Nothing here runs at import: the manager (a :class:`ManagerThread`, one cluster
member per process) is built from the settings and started by the first use,
so a pre-forking server's master owns no thread or socket.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.signals import request_finished, request_started, setting_changed
from django.utils import timezone
from django.utils.module_loading import import_string

from ..config import ClusterConfig
from ..sessions.ids import SessionIds, loggable_id, session_fields
from ..sessions.listeners import SessionListener
from ..sessions.managers import manager_for
from ..sessions.session import Session, UnserialisableChange
from ..sessions.threaded import ManagerThread, build_at_start_all
from .cookies import SessionCookie
from .farm import farm_for
from .front import SessionFront
from .wsgi_admin import WSGISessionAdmin
from .wsgi_operations import StartResponse, WSGIApp, WSGIOperations

logger = logging.getLogger("clustersession")

EXPIRY_KEY = "_session_expiry"
"""Where Django's ``set_expiry`` keeps the expiry it was given (in the session's data)."""

# Settings that shape the engine: a change (override_settings in tests) rebuilds it.
_ENGINE_SETTINGS = frozenset(
    {"CLUSTERSESSION", "CLUSTERSESSION_LISTENERS", "SECRET_KEY", "SESSION_COOKIE_NAME"}
)


@dataclass(frozen=True, slots=True)
class Engine:
    """The process's session front and manager, built from the Django settings."""

    config: ClusterConfig
    front: SessionFront
    manager: ManagerThread
    operations: WSGIOperations
    admin: WSGISessionAdmin

    def may_create(self) -> bool:
        """Whether a request may start a session (``manager.max_active_sessions``)."""
        return self.manager.may_create()

    @property
    def limited(self) -> bool:
        """Whether new sessions are counted against ``manager.max_active_sessions``."""
        return self.config.manager.max_active_sessions >= 0


_engine: Engine | None = None
_engine_lock = threading.Lock()


def engine() -> Engine:
    """The process's engine, built from the settings on first use (no thread starts here)."""
    global _engine
    built = _engine
    if built is not None:
        return built
    with _engine_lock:
        if _engine is None:
            _engine = _build_engine()
        return _engine


def stop() -> None:
    """Stop this process's manager (it leaves the cluster) and forget the engine.

    The next use builds it again from the settings. Meant for tests and for
    servers that want a clean leave before exit (the manager also stops at exit).
    """
    global _engine
    with _engine_lock:
        built, _engine = _engine, None
    if built is not None:
        built.manager.stop()


def admin() -> WSGISessionAdmin:
    """The process's session admin API (get, sessions, invalidate_principal, ...)."""
    return engine().admin


def with_operations(application: WSGIApp) -> WSGIApp:
    """``application`` (``get_wsgi_application()``) with the operational endpoints in front.

    ``valves.health`` probes, ``metrics.path`` and ``valves.status`` are answered
    before Django's middleware and routing, as the other WSGI adapters do.
    """

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answered = engine().operations.answer(environ, start_response)
        return application(environ, start_response) if answered is None else answered

    return serve


def cluster_config() -> ClusterConfig:
    """``settings.CLUSTERSESSION`` (a dict in the TOML's shape, or a TOML file's path).

    Without it, :meth:`ClusterConfig.from_env` (the ``CLUSTERSESSION_*`` variables).
    """
    configured = getattr(settings, "CLUSTERSESSION", None)
    if configured is None:
        return ClusterConfig.from_env()
    if isinstance(configured, dict):
        return ClusterConfig.from_mapping(configured, origin="settings.CLUSTERSESSION")
    return ClusterConfig.load(configured)


def _listeners() -> list[SessionListener]:
    """``settings.CLUSTERSESSION_LISTENERS``: dotted paths of listener classes or instances."""
    found: list[SessionListener] = []
    paths: Iterable[str] = getattr(settings, "CLUSTERSESSION_LISTENERS", ())
    for path in paths:
        target = import_string(path)
        listener = target() if isinstance(target, type) else target
        if not isinstance(listener, SessionListener):
            raise TypeError(f"CLUSTERSESSION_LISTENERS: {path} is not a SessionListener")
        found.append(listener)
    return found


def _build_engine() -> Engine:
    config = cluster_config()
    # The cluster's secret signs ids when it has one, so every adapter of a mixed
    # cluster agrees; otherwise the site's own SECRET_KEY does.
    secret = config.secret if config.secret is not None else settings.SECRET_KEY
    # Ids signed with a secret being rotated out still verify: the config's previous
    # secrets, or Django's own SECRET_KEY_FALLBACKS when SECRET_KEY signs.
    previous = (
        config.previous_secrets
        if config.secret is not None
        else tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()))
    )
    # Django's middleware writes the cookie itself; the front only needs its name.
    cookie = SessionCookie(settings.SESSION_COOKIE_NAME, path=settings.SESSION_COOKIE_PATH)
    idle = config.manager.max_inactive_interval
    front = SessionFront(
        SessionIds(secret, config.jvm_route, previous), cookie, config, idle_timeout=idle
    )
    listeners = _listeners()
    manager = ManagerThread(
        lambda: manager_for(config, listeners=listeners, idle_timeout=idle),
        name="clustersession-django",
        companion=farm_for(config),
    )
    operations = WSGIOperations.build(config, manager)
    return Engine(config, front, manager, operations, WSGISessionAdmin(manager, config))


def _settings_changed(*, setting: str, **_: object) -> None:
    if setting in _ENGINE_SETTINGS:
        stop()


setting_changed.connect(_settings_changed, dispatch_uid="clustersession.django.settings")


def _build_for_server_hooks() -> None:
    # The engine is built on first use; a server hook (clustersession.gunicorn) that
    # starts the members before any request must find it built. Without settings
    # (imported outside a Django project) there is nothing to build.
    if settings.configured:
        engine()


build_at_start_all(_build_for_server_hooks)


# -- the request's stores ---------------------------------------------------------


@dataclass(slots=True)
class _Request:
    """What a request's stores need at its end: its path, and the stores it loaded."""

    path: str
    stores: list[SessionStore] = field(default_factory=list)
    environ: dict[str, Any] | None = None
    """The WSGI environ (Django's ``request.META``); ``None`` under ASGI."""


# Set by request_started in the context that also sends request_finished. The list
# is shared, not replaced, so stores loaded in a copied context (ASGI runs sync code
# in threads with a copy of the request's context) are still seen at the end.
_request: ContextVar[_Request | None] = ContextVar("clustersession_django_request", default=None)


def _request_started(
    *, environ: dict[str, Any] | None = None, scope: dict[str, Any] | None = None, **_: object
) -> None:
    if environ is not None:
        path = str(environ.get("PATH_INFO", ""))
    elif scope is not None:
        path = str(scope.get("path", ""))
    else:
        path = ""
    _request.set(_Request(path, environ=environ))


def _request_finished(**_: object) -> None:
    state = _request.get()
    if state is None:
        return
    _request.set(None)
    for store in state.stores:
        try:
            store.finish()
        except Exception:  # the response is gone: log, and let the other stores finish
            logger.exception("session %s: committing at the end of the request failed",
                             loggable_id(store.session_key),
                             extra=session_fields(store.session_key))  # fmt: skip


request_started.connect(_request_started, dispatch_uid="clustersession.django.started")
request_finished.connect(_request_finished, dispatch_uid="clustersession.django.finished")


def _path() -> str:
    state = _request.get()
    return state.path if state is not None else ""


def _has_changes(session: Session, now: float) -> bool:
    """Whether committing ``session`` would store more than its access time."""
    try:
        deltas = session.changes(now)
    except UnserialisableChange as exc:  # logged when it is committed
        deltas = exc.deltas
    return any(not delta.is_access_only for delta in deltas)


# -- the store ----------------------------------------------------------------------


class SessionStore(SessionBase):
    """``request.session``: Django's session API over a clustered server-side session.

    The data is a :class:`~clustersession.sessions.session.Session`: values must be
    serialisable (``TypeError`` naming key and type at assignment), in-place changes
    are saved, and :attr:`session` offers ``regenerate_id()``, ``invalidate()``,
    ``max_inactive_interval`` and the rest of the HttpSession-style API.
    """

    original_id: str | None = None
    """The id the request came with when the route binder re-routed its session."""
    primary: bool | None = None
    """With ``manager.primary_indicator``: whether this node owns the session (``None``: no
    live session, or off); also ``request.META[primary_indicator_name]`` under WSGI."""

    def __init__(self, session_key: str | None = None) -> None:
        self._modified = False
        # The id load() found alive (save() checks it still is), else None.
        self._opened_key: str | None = None
        super().__init__(session_key)

    # -- keys ------------------------------------------------------------------

    def _validate_session_key(self, key: object) -> bool:
        """Only our signed ids pass: a forged, bogus or oversized key is no key at all."""
        return isinstance(key, str) and engine().front.ids.parse(key) is not None

    def _get_new_session_key(self) -> str:
        ids = engine().front.ids
        return ids.full_id(ids.new_token())

    # -- the data --------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The session itself (loaded on first use), with its HttpSession-style API."""
        session: Session = self._session
        return session

    def _loaded(self) -> Session | None:
        cached: Session | None = self.__dict__.get("_session_cache")
        return cached

    def _get_session(self, no_load: bool = False) -> Session:
        # Always our Session, never a plain dict: Django's base puts {} here for a new one.
        self.accessed = True
        session = self._loaded()
        if session is None:
            session = self._open(None if no_load else self.session_key)
            self._session_cache = session
        return session

    _session = property(_get_session)

    async def _aget_session(self, no_load: bool = False) -> Session:
        session: Session = await sync_to_async(self._get_session)(no_load)
        return session

    def load(self) -> dict[str, Any]:
        """The session the key names (a tracked dict), or a new empty one."""
        return self._open(self.session_key)

    def _open(self, key: str | None) -> Session:
        """Open ``key``'s session; a key that names none is dropped, as Django's backends do."""
        built = engine()
        manager = built.manager
        session, self.original_id, self.primary = built.front.open(
            key,
            manager.open,
            now=manager.clock(),
            may_create=built.may_create if built.limited else None,
            fetch=manager.fetcher,
        )
        state = _request.get()
        if self.primary is not None and state is not None and state.environ is not None:
            state.environ[built.front.primary_indicator_name] = self.primary
        if session.is_new:
            self._opened_key = None
            if key is not None:  # unknown, expired, retired: never adopt a client's key
                self._session_key = None
        else:
            self._opened_key = self._session_key = session.id
            if _past(session.peek(EXPIRY_KEY)):
                # set_expiry(date) was a hard limit: the date has passed, so it is gone.
                session.invalidate()
                self._commit(session)
                self._opened_key = self._session_key = None
                session = self._open_new()
        if state is not None and not any(store is self for store in state.stores):
            state.stores.append(self)
        return session

    def _open_new(self) -> Session:
        built = engine()
        manager = built.manager
        may_create = built.may_create if built.limited else None
        return built.front.open(None, manager.open, now=manager.clock(), may_create=may_create)[0]

    # -- what the middleware asks ------------------------------------------------

    @property
    def modified(self) -> bool:
        """Whether saving would store something: set explicitly, or real changes found.

        Real changes include values changed in place. A retired id's writes are
        dropped (as on the ASGI side), so it never reports modified.
        """
        session = self._loaded()
        if session is None:
            return self._modified
        if session.retired and not session.was_invalidated:
            return False
        if self._modified or session.cookie_stale:
            return True
        return _has_changes(session, engine().manager.clock())

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = value

    def is_empty(self) -> bool:
        """True when there is no session: no key and nothing loaded, or nothing held.

        An emptied session is empty even with a key: it is destroyed, not saved,
        and the middleware deletes the client's cookie.
        """
        session = self._loaded()
        if session is None:
            return not self._session_key
        return not session

    # -- Django's methods that bypass __setitem__ -------------------------------

    def pop(self, key: str, *default: Any) -> Any:
        """Remove ``key``; marks the session modified if it held it."""
        session = self._session
        if key in session:
            self._modified = True
        return session.pop(key, *default)

    async def apop(self, key: str, *default: Any) -> Any:
        """Async :meth:`pop`."""
        return await sync_to_async(self.pop)(key, *default)

    def clear(self) -> None:
        """Remove everything: the session is destroyed when the request ends."""
        self._session.clear()
        self._modified = True

    # -- SessionBase's storage contract -------------------------------------------

    def exists(self, session_key: str | None) -> bool:
        """Whether ``session_key`` names a live session here (or replicated here)."""
        if not session_key:
            return False
        built = engine()
        parsed = built.front.ids.parse(session_key)
        if parsed is None:
            return False
        fetch = built.manager.fetcher
        if fetch is not None:
            fetch(*parsed)
        return built.manager.open(parsed[0]).record is not None

    def create(self) -> None:
        """Start a new session with a fresh key.

        An empty session is not stored: the key becomes real when the session
        holds data and is saved.
        """
        session = self._open_new()
        self._session_cache = session
        self._opened_key = None
        self._session_key = session.id
        self._modified = True

    def save(self, must_create: bool = False) -> None:
        """Commit the changes (to every member, when distributable).

        ``must_create``: raise ``CreateError`` if the key names a live session.
        Otherwise raise ``UpdateError`` if the session this request loaded was
        destroyed meanwhile (the middleware answers ``SessionInterrupted``).
        """
        session = self._session
        if must_create:
            if self.session_key is not None and self.exists(self.session_key):
                raise CreateError
        elif self._opened_key is not None and not self.exists(self._opened_key):
            raise UpdateError
        committed = self._commit(session)
        if session.retired and not session.was_invalidated:
            return  # its writes were dropped: no key to hand out
        if session:
            self._session_key = session.id
        elif session.existed:
            self._session_key = None  # emptied: destroyed
        else:
            self._session_key = session.id  # new and empty: a reserved key, as create()
        if committed:
            # Changes are relative to what was loaded: load again before more changes.
            del self._session_cache
            self._opened_key = self._session_key

    def _commit(self, session: Session) -> bool:
        built = engine()
        manager = built.manager
        commit = built.front.commit(session, _path(), now=manager.clock())
        if commit is None:
            return False
        manager.commit(commit.deltas, replicate=commit.replicate)
        built.admin.enforce_limit(commit.deltas)
        return True

    def delete(self, session_key: str | None = None) -> None:
        """Destroy the session ``session_key`` (default: this one's) on every member."""
        key = session_key if session_key is not None else self.session_key
        if key is None:
            return
        built = engine()
        manager = built.manager
        doomed = built.front.open(
            key, manager.open, now=manager.clock(), may_create=None, fetch=manager.fetcher
        )[0]
        if doomed.is_new:
            return  # nothing stored under it
        doomed.invalidate()
        self._commit(doomed)

    def flush(self) -> None:
        """Destroy the session now and start an empty one with a new key (logout)."""
        self.delete()
        self._session_cache = self._open_new()
        self._opened_key = self._session_key = None
        self.accessed = self._modified = True

    def cycle_key(self) -> None:
        """A new key for the same data (login): the old key is retired when saved."""
        session = self._session
        session.regenerate_id()
        self._session_key = session.id
        self._modified = True

    async def acycle_key(self) -> None:
        """Async :meth:`cycle_key`."""
        await sync_to_async(self.cycle_key)()

    def finish(self) -> None:
        """At the request's end: commit what the middleware had no reason to save.

        That is the access time of a session only read (keep-alive), and the
        destruction of a session the request emptied. Changes left unsaved (a 5xx
        response, or no save()) are dropped, as Django drops them.
        """
        session = self._loaded()
        if session is None:
            return
        if session and self.modified:
            return
        self._commit(session)

    @classmethod
    def clear_expired(cls) -> None:
        """Expire now what this process's manager would expire at its next sweep.

        A no-op where no manager runs (``manage.py clearsessions``): every member
        sweeps its sessions itself, every ``manager.expiry_sweep_interval`` seconds.
        """
        built = _engine
        if built is not None and built.manager.running:
            built.manager.sweep()

    # -- expiry ------------------------------------------------------------------

    def set_expiry(self, value: int | datetime | timedelta | None) -> None:
        """Django's ``set_expiry``, also mapped to the server's idle timeout.

        ``n > 0`` seconds: the session expires after ``n`` idle seconds. A date or
        timedelta: after the seconds left (and never past the date). ``0`` (at
        browser close), ``None`` and negatives: the configured
        ``manager.max_inactive_interval``.
        """
        super().set_expiry(value)
        default = engine().front.idle_timeout
        if isinstance(value, datetime | timedelta):
            seconds = max(1, math.ceil(self.get_expiry_age()))
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            seconds = value
        else:
            seconds = default
        session = self._session
        if session.max_inactive_interval != seconds:  # unchanged is no change to save
            session.max_inactive_interval = seconds

    async def aset_expiry(self, value: int | datetime | timedelta | None) -> None:
        """Async :meth:`set_expiry`."""
        await sync_to_async(self.set_expiry)(value)

    @property
    def max_inactive_interval(self) -> int:
        """The server-side idle timeout of this session, in seconds (``<= 0``: never)."""
        return self.session.max_inactive_interval


def _past(expiry: object) -> bool:
    """Whether ``expiry`` is a date (as set_expiry stores one) that has passed."""
    if not isinstance(expiry, str):
        return False
    try:
        when = datetime.fromisoformat(expiry)
    except ValueError:
        return False
    now = timezone.now()
    if timezone.is_aware(when) != timezone.is_aware(now):
        when = when.replace(tzinfo=now.tzinfo)
    return bool(when <= now)
