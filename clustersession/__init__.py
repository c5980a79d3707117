"""clustersession: Tomcat-style session clustering for Python web apps.

Floors, imports pointing down only: :mod:`clustersession.web` (the adapters:
ASGI middleware, WSGI middleware, Flask and Django), :mod:`clustersession.sessions`
(sessions and their managers), :mod:`clustersession.channel` (the group channel);
and :mod:`clustersession.config`, used by all of them.
"""

from .config import ClusterConfig, ConfigError
from .sessions.listeners import AttributeEvent, SessionEvent, SessionListener
from .sessions.session import Session, TooManyActiveSessions
from .web.middleware import ClusterSessionMiddleware

__all__ = [
    "AttributeEvent",
    "ClusterConfig",
    "ClusterSessionMiddleware",
    "ConfigError",
    "Session",
    "SessionEvent",
    "SessionListener",
    "TooManyActiveSessions",
]
