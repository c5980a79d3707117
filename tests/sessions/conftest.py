"""The layer marker of test_replication.py, which cannot carry its own ``pytestmark`` yet.

It is being rewritten elsewhere; once it says ``pytest.mark.network`` itself, this
file goes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_LOOPBACK_FILES = {Path(__file__).with_name("test_replication.py")}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The hook sees every collected item, not only this folder's: filter by file.
    for item in items:
        if item.path in _LOOPBACK_FILES:
            item.add_marker(pytest.mark.network)
