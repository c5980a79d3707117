"""Views for the Django engine's tests (``ROOT_URLCONF``); each answers the session as JSON."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from clustersession import SessionEvent, SessionListener


class Recorder(SessionListener):
    """Collects lifecycle events (``CLUSTERSESSION_LISTENERS`` names ``RECORDER``)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def session_created(self, event: SessionEvent) -> None:
        self.events.append(("created", event.session_id))

    def session_destroyed(self, event: SessionEvent) -> None:
        self.events.append(("destroyed", event.session_id))

    def session_id_changed(self, event: SessionEvent) -> None:
        self.events.append(("renamed", event.session_id))


RECORDER = Recorder()


def answer(request: HttpRequest, **extra: Any) -> JsonResponse:
    session = request.session
    data = dict(session.items())  # loads first: the key is known valid only then
    return JsonResponse({"key": session.session_key, "data": data, **extra})


def set_value(request: HttpRequest) -> JsonResponse:
    for key, value in request.GET.items():
        request.session[key] = value
    return answer(request)


def get(request: HttpRequest) -> JsonResponse:
    return answer(request)


def push(request: HttpRequest) -> JsonResponse:
    # In place only: no assignment, no `modified = True`.
    request.session["items"].append(request.GET["v"])
    return JsonResponse({"key": request.session.session_key})


def bad(request: HttpRequest) -> HttpResponse:
    try:
        request.session["bad"] = object()
    except TypeError as exc:
        return HttpResponse(str(exc), status=400)
    return HttpResponse("stored?!")


def cycle(request: HttpRequest) -> JsonResponse:
    request.session.cycle_key()
    return answer(request)


def flush(request: HttpRequest) -> JsonResponse:
    request.session.flush()
    return answer(request)


def clear(request: HttpRequest) -> JsonResponse:
    request.session.clear()
    return answer(request)


def expiry(request: HttpRequest) -> JsonResponse:
    value = request.GET["s"]
    request.session.set_expiry(None if value == "none" else int(value))
    return answer(
        request,
        age=request.session.get_expiry_age(),
        browser_close=request.session.get_expire_at_browser_close(),
        idle=request.session.max_inactive_interval,
    )


def boom(request: HttpRequest) -> HttpResponse:
    request.session["lost"] = "yes"
    return HttpResponse("failed", status=500)


urlpatterns = [
    path("set", set_value),
    path("get", get),
    path("push", push),
    path("bad", bad),
    path("cycle", cycle),
    path("flush", flush),
    path("clear", clear),
    path("expiry", expiry),
    path("boom", boom),
]
