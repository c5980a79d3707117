"""Sessions for Flask apps: ``ClusterSessionInterface(config).init_app(app)``.

``admin(app)`` (or ``admin(current_app)`` in a view) is the session admin API.

Needs the ``flask`` extra (``pip install clustersession[flask]``).
"""

from .web.flask import ClusterSessionInterface, FlaskSession, admin
from .web.wsgi_admin import WSGISessionAdmin

__all__ = ["ClusterSessionInterface", "FlaskSession", "WSGISessionAdmin", "admin"]
