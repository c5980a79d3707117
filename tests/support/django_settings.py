"""Settings of the Django test project served by gunicorn (``DJANGO_SETTINGS_MODULE``).

The cluster is configured by the ``CLUSTERSESSION_*`` variables (no
``CLUSTERSESSION`` setting), as a container would. The cookie is named
``session``, as the ASGI and Flask nodes name theirs, so one cookie serves a
mixed cluster. No database: the session engine keeps sessions in the cluster.
"""

from __future__ import annotations

# Only the cookie's id is signed, with the cluster's secret; this key signs nothing here.
SECRET_KEY = "django-test-project-key-not-used-for-session-ids"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
ROOT_URLCONF = "tests.support.django_urls"
SESSION_ENGINE = "clustersession.django"
SESSION_COOKIE_NAME = "session"
DATABASES: dict[str, object] = {}
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets TZ for the process: keep the server's log times in UTC
