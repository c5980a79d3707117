"""Sessions for WSGI apps: ``from clustersession.wsgi import ClusterSessionWSGIMiddleware``."""

from .web.wsgi import ENVIRON_KEY, ClusterSessionWSGIMiddleware

__all__ = ["ENVIRON_KEY", "ClusterSessionWSGIMiddleware"]
