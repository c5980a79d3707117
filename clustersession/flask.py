"""Sessions for Flask apps: ``app.session_interface = ClusterSessionInterface(config)``.

Needs the ``flask`` extra (``pip install clustersession[flask]``).
"""

from .web.flask import ClusterSessionInterface, FlaskSession

__all__ = ["ClusterSessionInterface", "FlaskSession"]
