"""Sessions for WSGI apps: ``from clustersession.wsgi import ClusterSessionWSGIMiddleware``."""

from .web.wsgi import ENVIRON_KEY, ClusterSessionWSGIMiddleware
from .web.wsgi_admin import ADMIN_ENVIRON_KEY, WSGISessionAdmin
from .web.wsgi_operations import WSGIOperations

__all__ = [
    "ADMIN_ENVIRON_KEY",
    "ENVIRON_KEY",
    "ClusterSessionWSGIMiddleware",
    "WSGIOperations",
    "WSGISessionAdmin",
]
