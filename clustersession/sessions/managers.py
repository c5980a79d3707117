"""``manager_for``: the manager a configuration asks for, so adapters name none."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import ClusterConfig
from .backup_manager import BackupManager
from .delta_manager import DeltaManager
from .listeners import SessionListener
from .local_manager import LocalManager
from .manager import Manager


def manager_for(
    config: ClusterConfig, *, listeners: Sequence[SessionListener] = (), idle_timeout: int
) -> Manager:
    """When ``config.distributable`` (web.xml's ``<distributable/>``), the manager
    ``manager.kind`` names (:class:`DeltaManager` or :class:`BackupManager`), else a
    one-node :class:`LocalManager` whose sessions idle out after ``idle_timeout`` seconds.
    """
    if config.distributable:
        if config.manager.kind == "backup":
            return BackupManager(config, listeners=listeners)
        return DeltaManager(config, listeners=listeners)
    return LocalManager(
        sweep_interval=config.manager.expiry_sweep_interval,
        listeners=listeners,
        default_interval=idle_timeout,
        max_active_sessions=config.manager.max_active_sessions,
        lifetime=config.manager.lifetime,
        snapshot_path=config.manager.snapshot_path,
        snapshot_interval=config.manager.snapshot_interval,
        route=config.jvm_route,
    )
