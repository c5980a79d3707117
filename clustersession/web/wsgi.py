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

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Protocol

from ..sessions.listeners import SessionListener
from ..sessions.manager import ClusterView
from ..sessions.managers import manager_for
from ..sessions.session import Session
from ..sessions.threaded import ManagerThread
from .adapter import SessionAdapter
from .farm import farm_for
from .front import CookieAction

ENVIRON_KEY = "clustersession.session"
"""Where the session is in ``environ``."""

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
_Headers = list[tuple[str, str]]
_HTTP_STATUS = {200: "200 OK", 403: "403 Forbidden", 503: "503 Service Unavailable"}
LIVENESS_TIMEOUT = 5.0  # seconds the manager's loop thread has to answer a liveness probe


class StartResponse(Protocol):
    """PEP 3333's ``start_response``."""

    def __call__(
        self, status: str, headers: _Headers, exc_info: _ExcInfo | None = None, /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ClusterSessionWSGIMiddleware(SessionAdapter[WSGIApp, ManagerThread]):
    """Server-side, optionally replicated sessions for a WSGI app.

    Arguments and defaults are those of Starlette's ``SessionMiddleware`` (and of
    :class:`~clustersession.ClusterSessionMiddleware`): with ``config`` and
    ``config.distributable`` the sessions are replicated to every member.
    """

    _metrics_pid: int | None = None

    def _build_manager(self, listeners: Sequence[SessionListener]) -> ManagerThread:
        settings, idle = self.config, self.front.idle_timeout
        return ManagerThread(
            lambda: manager_for(settings, listeners=listeners, idle_timeout=idle),
            companion=farm_for(settings),
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        manager = self.manager
        path = environ.get("PATH_INFO", "")
        if self.health.matches(path):  # before start(): it waits for the state transfer
            return self._probe(path, start_response)
        if self.metrics is not None and self.metrics.matches(path):
            return _send(start_response, 200, self.metrics.content_type, self.metrics.exposition())
        manager.start()
        if self.metrics is not None:
            self._serve_metrics_port()
        if self.status.matches(path):
            return self._status(environ, start_response)
        cookie = environ.get("HTTP_COOKIE")
        raw = [] if cookie is None else [(b"cookie", cookie.encode("latin-1"))]
        opening = self.front.open(
            self.front.cookie.read(raw),
            manager.open,
            now=manager.clock(),
            may_create=self._may_create,
        )
        session = opening.session
        if opening.original_id is not None:
            environ[self.front.original_id_key] = opening.original_id
        if opening.primary is not None:
            environ[self.front.primary_indicator_name] = opening.primary
        environ[ENVIRON_KEY] = session
        environ["clustersession"] = self

        def settle_cookie(
            status: str, headers: _Headers, exc_info: _ExcInfo | None = None
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

    def _status(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        answer = self.status.answer(
            environ.get("PATH_INFO", ""),
            client_host=environ.get("REMOTE_ADDR"),
            query_string=environ.get("QUERY_STRING", ""),
            authorization=environ.get("HTTP_AUTHORIZATION", ""),
        )
        return _send(start_response, answer.status, answer.content_type, answer.body)

    def _probe(self, path: str, start_response: StartResponse) -> list[bytes]:
        def ready() -> bool:
            self.manager.start_soon()  # a node only probed until ready must still start
            return self.manager.ready

        def live() -> bool:
            return self.manager.responsive(LIVENESS_TIMEOUT)

        answer = self.health.answer(path, live=live, ready=ready)
        return _send(start_response, answer.status, answer.content_type, answer.body)

    def _metrics_view(self) -> ClusterView | None:
        return self.manager.view() if self.manager.running else None

    def _serve_metrics_port(self) -> None:
        """Open ``metrics.port`` once per serving process (after a fork, the child's)."""
        pid = os.getpid()
        if self._metrics_pid != pid and self.metrics is not None:
            self._metrics_pid = pid
            self.metrics.serve_port()


def _send(
    start_response: StartResponse, status: int, content_type: str, body: bytes
) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response(_HTTP_STATUS[status], headers)
    return [body]


def apply_cookie_action(action: CookieAction, headers: _Headers) -> _Headers:
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
