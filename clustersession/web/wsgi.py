"""``ClusterSessionWSGIMiddleware``: the ASGI middleware's sessions for WSGI apps.

The same arguments, cookie, ids and semantics as
:class:`~.middleware.ClusterSessionMiddleware` (both are I/O around
:class:`~.front.SessionFront`); the session is ``environ["clustersession.session"]``.
The manager runs on its own event loop thread (:class:`ManagerThread`), started
by the first request of the serving process, so it works under any WSGI server
(gunicorn sync and gthread workers, waitress, mod_wsgi) with no hooks. With
``[deployer]`` configured, the farm deployer starts and stops with it (:mod:`.farm`).

Changes are committed when the response's iterable is exhausted or closed; the
last chunk is held back until then, so with send options 2 and 6 it reaches the
client only once the members have the changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from typing import Any

from ..sessions.listeners import SessionListener
from ..sessions.manager import ClusterView
from ..sessions.managers import manager_for
from ..sessions.session import Session
from ..sessions.threaded import ManagerThread
from .adapter import SessionAdapter
from .farm import farm_for
from .front import CookieAction
from .wsgi_admin import ADMIN_ENVIRON_KEY, WSGISessionAdmin
from .wsgi_operations import (
    ExcInfo,
    Headers,
    StartResponse,
    WSGIApp,
    WSGIOperations,
    metrics_view,
)

ENVIRON_KEY = "clustersession.session"
"""Where the session is in ``environ``."""


class ClusterSessionWSGIMiddleware(SessionAdapter[WSGIApp, ManagerThread]):
    """Server-side, optionally replicated sessions for a WSGI app.

    Arguments and defaults are those of Starlette's ``SessionMiddleware`` (and of
    :class:`~clustersession.ClusterSessionMiddleware`): with ``config`` and
    ``config.distributable`` the sessions are replicated to every member.
    """

    def _build_manager(self, listeners: Sequence[SessionListener]) -> ManagerThread:
        settings, idle = self.config, self.front.idle_timeout
        return ManagerThread(
            lambda: manager_for(settings, listeners=listeners, idle_timeout=idle),
            companion=farm_for(settings),
        )

    @cached_property
    def operations(self) -> WSGIOperations:
        """Probes, metrics and the status page, answered in front of the app."""
        return WSGIOperations(self.manager, self.status, self.health, self.metrics)

    @cached_property
    def admin(self) -> WSGISessionAdmin:
        """The admin API over this manager (also ``environ["clustersession.admin"]``)."""
        return WSGISessionAdmin(self.manager, self.config)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answered = self.operations.answer(environ, start_response)
        if answered is not None:
            return answered
        manager = self.manager
        path = environ.get("PATH_INFO", "")
        manager.start()
        cookie = environ.get("HTTP_COOKIE")
        raw = [] if cookie is None else [(b"cookie", cookie.encode("latin-1"))]
        session, original_id, primary = self.front.open(
            self.front.cookie.read(raw),
            manager.open,
            now=manager.clock(),
            may_create=self._may_create,
            fetch=manager.fetcher,
        )
        if original_id is not None:
            environ[self.front.original_id_key] = original_id
        if primary is not None:
            environ[self.front.primary_indicator_name] = primary
        environ[ENVIRON_KEY] = session
        environ["clustersession"] = self
        environ[ADMIN_ENVIRON_KEY] = self.admin

        def settle_cookie(
            status: str, headers: Headers, exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            action = self.front.cookie_action(session)
            if action is not None:
                headers = apply_cookie_action(action, list(headers))
            return start_response(status, headers, exc_info)

        result = self.app(environ, settle_cookie)
        return CommitOnLastChunk(result, lambda: self._commit(session, path))

    def _commit(self, session: Session, path: str) -> None:
        commit = self.front.commit(session, path, now=self.manager.clock())
        if commit is not None:
            self.manager.commit(commit.deltas, replicate=commit.replicate)
            self.admin.enforce_limit(commit.deltas)

    def _metrics_view(self) -> ClusterView | None:
        return metrics_view(self.manager)


def apply_cookie_action(action: CookieAction, headers: Headers) -> Headers:
    """``headers`` with ``Vary: Cookie`` (merged into an existing Vary) and the Set-Cookie."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            tokens = {token.strip().lower() for token in value.split(",")}
            if "cookie" not in tokens and "*" not in tokens:
                headers[index] = (name, f"{value}, Cookie")
            break
    else:
        headers.append(("Vary", "Cookie"))
    if action.set_cookie is not None:
        headers.append(("Set-Cookie", action.set_cookie))
    return headers


class CommitOnLastChunk:
    """The app's response iterable, with ``commit`` run before its last chunk goes out.

    Also run on ``close()`` if the server stops iterating early (PEP 3333 always
    calls ``close``); at most once.
    """

    def __init__(self, result: Iterable[bytes], commit: Callable[[], None]) -> None:
        self._result = result
        self._commit = commit
        self._committed = False

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._result)
        try:
            held = next(chunks)
        except StopIteration:
            self._commit_once()
            return
        for chunk in chunks:
            yield held
            held = chunk
        self._commit_once()
        yield held

    def _commit_once(self) -> None:
        if not self._committed:
            self._committed = True
            self._commit()

    def close(self) -> None:
        """Commit (if the response was cut short), then close the app's iterable."""
        try:
            self._commit_once()
        finally:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
