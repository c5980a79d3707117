"""The Django session engine: ``SESSION_ENGINE = "clustersession.django"``.

Configure the cluster with ``settings.CLUSTERSESSION`` (a dict in the TOML file's
shape, or the path of a TOML file; without it the ``CLUSTERSESSION_*``
variables) and optionally ``settings.CLUSTERSESSION_LISTENERS`` (dotted paths of
:class:`~clustersession.SessionListener` classes or instances). Ids are signed
with the config's ``secret``, else with ``settings.SECRET_KEY``. The adapter is
:mod:`clustersession.web.django`.

``admin()`` is the session admin API; ``with_operations(get_wsgi_application())``
serves the health probes, ``metrics.path`` and the status page in front of Django.
"""

from ..web.django import SessionStore, admin, engine, stop, with_operations

__all__ = ["SessionStore", "admin", "engine", "stop", "with_operations"]
