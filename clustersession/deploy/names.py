"""Which artifact names a node accepts, and where a name may lead in ``deploy_dir``.

A name comes from the network, so it is treated as hostile: it must be one plain
file name, and the path it makes must stay in ``deploy_dir`` even through a
symlink someone left there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

MAX_NAME_BYTES: Final = 255  # NAME_MAX on Linux and macOS


class BadName(ValueError):
    """An artifact name that is refused (the message says why)."""


def check_name(name: str) -> str:
    """``name`` if it is one plain file name, else :class:`BadName`.

    Refused: empty, ``.``/``..`` or any name starting with ``.`` (the deployer's
    own files are dot files), separators (``/``, ``\\``), NUL or other control
    characters, absolute paths, and names over 255 UTF-8 bytes.
    """
    if not name:
        raise BadName("the name is empty")
    if name.startswith("."):
        raise BadName(f"{name!r} starts with '.' ('..', hidden and the deployer's files)")
    if "/" in name or "\\" in name or os.path.isabs(name):
        raise BadName(f"{name!r} is a path, not a file name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadName(f"{name!r} contains control characters")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise BadName(f"{name[:40]!r}... is longer than {MAX_NAME_BYTES} bytes")
    return name


def target(deploy_dir: Path, name: str) -> Path:
    """The path of ``name`` in ``deploy_dir``; :class:`BadName` if it would lead out.

    An existing symlink at that path that resolves outside ``deploy_dir`` is
    refused: replacing or removing it is not what its owner set it up for.
    """
    path = deploy_dir / check_name(name)
    root = deploy_dir.resolve()
    if path.is_symlink() and root not in path.resolve().parents:
        raise BadName(f"{name!r} is a symlink that leads out of {deploy_dir}")
    return path
