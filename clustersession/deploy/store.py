"""``ArtifactStore``: the files of ``deploy_dir`` and ``temp_dir``, and the manifest.

Blocking file work: every method here is synchronous and called through
``asyncio.to_thread`` by the deployer, under the :class:`~.lock.HostLock`.

The manifest (``deploy_dir/.clustersession-farm.json``) records what the farm
deployed (name, size, digest, when) and what it removed (name, when), so a node
can compare with a peer and converge. It is written to a temporary file and
renamed, so a crash leaves the old or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from .names import target
from .wire import Entry

logger = logging.getLogger("clustersession.deploy")

MANIFEST_NAME: Final = ".clustersession-farm.json"
PART_PREFIX: Final = "clustersession-farm-"
PART_SUFFIX: Final = ".part"


@dataclass(slots=True)
class Manifest:
    """What is deployed (by name) and what was undeployed (name → when)."""

    entries: dict[str, Entry] = field(default_factory=dict)
    removed: dict[str, float] = field(default_factory=dict)


class ArtifactStore:
    """Artifacts in ``deploy_dir``, received through ``temp_dir``."""

    def __init__(self, deploy_dir: Path, temp_dir: Path) -> None:
        self.deploy_dir = deploy_dir
        self.temp_dir = temp_dir
        # Partial files carry a tag of their deploy_dir: nodes sharing a temp_dir
        # (several nodes on one machine) clean only their own litter.
        tag = hashlib.sha256(str(deploy_dir.resolve()).encode()).hexdigest()[:12]
        self._part_prefix = f"{PART_PREFIX}{tag}-"

    def prepare(self) -> int:
        """Create the directories; remove partial files a killed process left; how many."""
        self.deploy_dir.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        removed = 0
        for part in self.temp_dir.glob(f"{self._part_prefix}*{PART_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
                removed += 1
        return removed

    # -- manifest -------------------------------------------------------------------

    def manifest(self) -> Manifest:
        """The manifest as on disk (empty when there is none or it is unreadable)."""
        path = self.deploy_dir / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = {
                e["name"]: Entry(e["name"], int(e["size"]), e["digest"], float(e["deployed_at"]))
                for e in data["entries"]
            }
            removed = {str(k): float(v) for k, v in data["removed"].items()}
        except FileNotFoundError:
            return Manifest()
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("farm manifest %s is unreadable (%s); starting empty", path, exc)
            return Manifest()
        return Manifest(entries, removed)

    def _save(self, manifest: Manifest) -> None:
        data = {
            "entries": [
                {"name": e.name, "size": e.size, "digest": e.digest, "deployed_at": e.deployed_at}
                for e in sorted(manifest.entries.values(), key=lambda e: e.name)
            ],
            "removed": manifest.removed,
        }
        path = self.deploy_dir / MANIFEST_NAME
        tmp = path.with_name(f"{MANIFEST_NAME}.{secrets.token_hex(4)}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def has(self, entry: Entry) -> bool:
        """Whether ``entry``'s name is deployed here with its digest (and its file is there)."""
        mine = self.manifest().entries.get(entry.name)
        if mine is None or mine.digest != entry.digest:
            return False
        path = target(self.deploy_dir, entry.name)
        return path.is_file() and path.stat().st_size == mine.size

    def path_of(self, digest: str) -> Path | None:
        """The deployed file whose digest is ``digest`` (to serve it to a peer)."""
        for entry in self.manifest().entries.values():
            if entry.digest == digest:
                return target(self.deploy_dir, entry.name)
        return None

    # -- writing ----------------------------------------------------------------------

    def open_part(self) -> tuple[Path, BinaryIO]:
        """A new partial file in ``temp_dir``, open for writing."""
        path = self.temp_dir / f"{self._part_prefix}{secrets.token_hex(8)}{PART_SUFFIX}"
        return path, path.open("xb")

    def install(self, part: Path, entry: Entry) -> Path:
        """Move the verified ``part`` into ``deploy_dir`` as ``entry.name``; record it."""
        path = target(self.deploy_dir, entry.name)
        try:
            os.replace(part, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # temp_dir is on another file system: copy next to the target, then
            # rename, so deploy_dir still never shows a half-written file.
            staged = self.deploy_dir / f".{PART_PREFIX}{secrets.token_hex(8)}{PART_SUFFIX}"
            try:
                shutil.copyfile(part, staged)
                os.replace(staged, path)
            finally:
                staged.unlink(missing_ok=True)
                part.unlink(missing_ok=True)
        manifest = self.manifest()
        manifest.entries[entry.name] = entry
        manifest.removed.pop(entry.name, None)
        self._save(manifest)
        return path

    def remove(self, name: str, at: float) -> Path | None:
        """Undeploy ``name`` (recorded as removed at ``at``); its former path if it was here."""
        path = target(self.deploy_dir, name)
        manifest = self.manifest()
        had = manifest.entries.pop(name, None)
        if had is not None and had.deployed_at > at:
            manifest.entries[name] = had  # deployed again after that undeploy: keep it
            return None
        manifest.removed[name] = max(at, manifest.removed.get(name, 0.0))
        existed = had is not None and path.is_file()
        if existed:
            path.unlink()
        self._save(manifest)
        return path if existed else None
