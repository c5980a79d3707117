"""The farm deployer beside every adapter's manager, when ``[deployer]`` is configured.

One place for what the ASGI middleware and the WSGI adapters (plain WSGI, Flask,
Django) all do: one deployer per process, sharing the manager's channel (its
payloads are marked as an application's, see ``channel.application``), built
before the manager starts (its listener is on the channel before the member is
seen, so a deploy announced at once is not lost; it waits for the deployer's
start), started after the manager and stopped before it. A manager without a
channel (not distributable) leaves the deployer to make its own.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import ClusterConfig
from ..deploy import FarmDeployer
from ..sessions.manager import Manager


def farm_for(config: ClusterConfig) -> Callable[[Manager], FarmDeployer] | None:
    """What builds the deployer from the manager (not started yet); None without ``[deployer]``.

    For the WSGI adapters it is the ``companion`` of their
    :class:`~clustersession.sessions.threaded.ManagerThread`.
    """
    if not config.deployer.enabled:
        return None

    def build(manager: Manager) -> FarmDeployer:
        return FarmDeployer(config, channel=manager.channel)

    return build
