"""The farm deployer: files pushed to every node of the cluster (Tomcat's FarmWarDeployer).

A sibling of the session floor: it uses the channel (shared with the session
manager, its payloads marked as an application's) and the config, never the
sessions or the web floor. :class:`FarmDeployer` runs on each node;
:class:`FarmClient` is what the ``clustersession farm`` command does.
"""

from .client import FarmClient, Listing
from .deployer import FarmDeployer, Refused
from .fanout import Outcome
from .names import BadName, check_name
from .wire import Entry

__all__ = [
    "BadName",
    "Entry",
    "FarmClient",
    "FarmDeployer",
    "Listing",
    "Outcome",
    "Refused",
    "check_name",
]
