"""The Django session engine: ``SESSION_ENGINE = "clustersession.django"``.

Configure the cluster with ``settings.CLUSTERSESSION`` (a dict in the TOML file's
shape, or the path of a TOML file; without it the ``CLUSTERSESSION_*``
variables) and optionally ``settings.CLUSTERSESSION_LISTENERS`` (dotted paths of
:class:`~clustersession.SessionListener` classes or instances). Ids are signed
with the config's ``secret``, else with ``settings.SECRET_KEY``. The adapter is
:mod:`clustersession.web.django`.
"""

from ..web.django import SessionStore, engine, stop

__all__ = ["SessionStore", "engine", "stop"]
