"""The floors of the package hold: the import-linter contracts in pyproject.toml pass.

They state that imports only point down (web -> sessions -> channel -> config),
that the web floor reaches managers only through the ``Manager`` protocol, that
the channel knows nothing of sessions or HTTP, and that only the Flask adapter
imports flask.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
