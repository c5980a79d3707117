"""The Django test project's URLconf: the routes of :mod:`tests.support.wsgi_apps`.

Django's own spellings where they exist: ``flush()`` for ``invalidate``,
``cycle_key()`` for ``regenerate_id``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from clustersession.django import admin, engine

from .app import node_info


def route() -> str:
    """This node's ``jvm_route`` (building the engine starts nothing)."""
    return engine().config.jvm_route


def view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dict(request.session.items()))


def update(request: HttpRequest) -> JsonResponse:
    for key, value in json.loads(request.body).items():
        request.session[key] = value
    return view(request)


def append(request: HttpRequest, item: str) -> JsonResponse:
    request.session.setdefault("items", [])
    request.session["items"].append(item)  # in place: the engine finds the change itself
    return view(request)


def call(request: HttpRequest, method: str) -> HttpResponse:
    calls: dict[str, Callable[[], None]] = {
        "invalidate": request.session.flush,
        "regenerate_id": request.session.cycle_key,
    }
    calls[method]()
    return HttpResponse(request.session.session_key or "", content_type="text/plain")


def original(request: HttpRequest) -> JsonResponse:
    request.session.get("x")  # opening the session is what re-routes it
    return JsonResponse({"original": request.session.original_id})


def node(request: HttpRequest) -> JsonResponse:
    data = dict(request.session.items())
    return JsonResponse({"route": route(), "pid": os.getpid(), "session": data})


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse(node_info(engine().manager.view(), route()))


def login(request: HttpRequest, user: str) -> JsonResponse:
    request.session["user"] = user
    return view(request)


def sessions_of(request: HttpRequest, user: str) -> JsonResponse:
    return JsonResponse({"ids": [info.id for info in admin().sessions_of(user)]})


def logout_everywhere(request: HttpRequest, user: str) -> JsonResponse:
    return JsonResponse({"invalidated": admin().invalidate_principal(user)})


def primary(request: HttpRequest) -> JsonResponse:
    request.session.get("x")  # opening the session is what sets the indicator
    name = engine().config.valves.replication.primary_indicator_name
    return JsonResponse({"primary": request.META.get(name)})


urlpatterns = [
    path("", view),
    path("update", update),
    path("append/<str:item>", append),
    path("call/<str:method>", call),
    path("original", original),
    path("node", node),
    path("health", health),
    path("login/<str:user>", login),
    path("admin/of/<str:user>", sessions_of),
    path("admin/logout/<str:user>", logout_everywhere),
    path("primary", primary),
]
