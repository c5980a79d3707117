"""The Django app of the WSGI rows: ``bench.app``'s endpoints on ``request.session``.

Served by gunicorn as ``bench.django_app:create_app()``, with the session engine
named in ``$BENCH_VARIANT``; everything else is the same for every variant (one
middleware, ``SessionMiddleware``; the same installed apps):

* ``django-db``: Django's default engine (``db``) on SQLite, in the file
  ``$BENCH_DJANGO_DB``, migrated by the first worker that starts.
* ``django-cache``: the ``cache`` engine on the default ``locmem`` cache.
* ``django-ours``: ``SESSION_ENGINE = "clustersession.django"``, one node.

This module is also the URLconf (``ROOT_URLCONF``).
"""

from __future__ import annotations

import os
from typing import Any, Final

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from bench.wrk import realistic_session

DJANGO_VARIANTS: Final = ("django-db", "django-cache", "django-ours")
VARIANT_ENV: Final = "BENCH_VARIANT"
DB_ENV: Final = "BENCH_DJANGO_DB"
SECRET: Final = "bench-wsgi-secret-not-for-production"

_ENGINES: Final = {
    "django-db": "django.contrib.sessions.backends.db",
    "django-cache": "django.contrib.sessions.backends.cache",
    "django-ours": "clustersession.django",
}


def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("pong")  # the readiness probe: leaves the session alone


def login(request: HttpRequest) -> HttpResponse:
    request.session.update(realistic_session())
    return HttpResponse("ok")


def read(request: HttpRequest) -> JsonResponse:
    session = request.session
    return JsonResponse(
        {
            "user": session["display_name"],
            "admin": "admin" in session["roles"],
            "items": len(session["cart"]),
        }
    )


def write(request: HttpRequest) -> JsonResponse:
    session = request.session
    session["counter"] = session.get("counter", 0) + 1
    return JsonResponse({"user_id": session["user_id"], "counter": session["counter"]})


urlpatterns = [
    path("ping", ping),
    path("login", login),
    path("read", read),
    path("write", write),
]


def create_app() -> Any:
    """Configure Django for ``$BENCH_VARIANT`` and return its WSGI handler."""
    variant = os.environ.get(VARIANT_ENV, "")
    if variant not in DJANGO_VARIANTS:
        raise RuntimeError(f"${VARIANT_ENV} must be one of {DJANGO_VARIANTS}, got {variant!r}")
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY=SECRET,
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE=_ENGINES[variant],
        # Only the db engine uses it; every variant has it, so all start alike.
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.environ.get(DB_ENV, ":memory:"),
            }
        },
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        CLUSTERSESSION={"secret": SECRET},
        USE_TZ=True,
    )
    import django
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    django.setup()
    if variant == "django-db":
        # The session table, created once (later starts find it migrated).
        call_command("migrate", "sessions", verbosity=0, interactive=False)
    return get_wsgi_application()
