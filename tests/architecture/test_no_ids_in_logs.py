"""Every log call that passes a session id, token or cookie cuts it with ``loggable_id``.

The behaviour tests (tests/web/test_log_redaction.py) drive the paths that exist
today; this scan catches a new log call that passes an id straight through.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "clustersession"
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
# Names whose value is a whole session id or a cookie holding one.
ID_NAMES = {"token", "session_id", "session_key", "cookie_value", "original_id"}


def _names_an_id(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ID_NAMES
    if isinstance(node, ast.Attribute):
        if node.attr in ID_NAMES:
            return True
        # session.id / record.id: a session's id (a member's id is bytes, logged by name)
        return (
            node.attr == "id" and isinstance(node.value, ast.Name) and "session" in (node.value.id)
        )
    return False


def _leaks(call: ast.Call) -> list[str]:
    leaks = []
    for arg in call.args[1:]:
        if _names_an_id(arg):
            leaks.append(ast.unparse(arg))
        for inner in ast.walk(arg):
            if isinstance(inner, ast.JoinedStr | ast.FormattedValue) and any(
                _names_an_id(n) for n in ast.walk(inner) if isinstance(n, ast.expr)
            ):
                leaks.append(ast.unparse(arg))
    return leaks


def test_no_log_call_passes_a_whole_session_id() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and node.args
            ):
                found += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {x}" for x in _leaks(node)]
    assert found == [], "log calls passing a whole id (wrap it in loggable_id):\n" + "\n".join(
        found
    )
