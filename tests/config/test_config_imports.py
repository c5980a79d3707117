"""The config package's module import graph: no cycle, readers below the loader.

Imports are read from the source with ``ast``, including those inside functions
(a deferred import still makes a cycle). Only edges between the package's own
modules count, plus a check that config never imports the layers above it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import clustersession.config

PACKAGE = "clustersession.config"
DIR = Path(clustersession.config.__file__).parent
MODULES = frozenset(p.stem for p in DIR.glob("*.py"))  # "__init__" is the package itself
READERS = ("toml_file", "env", "tomcat_xml", "web_xml")


def _absolute(node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    # Relative to this module's package; the package's own __init__ counts as in it.
    base = PACKAGE.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported(module: str) -> Iterator[str]:
    """Every absolute module name ``module`` imports, anywhere in its source."""
    tree = ast.parse((DIR / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node)
            yield target
            # "from . import x" imports the submodule x when there is one.
            for alias in node.names:
                yield f"{target}.{alias.name}"


def _local(name: str) -> str | None:
    if name == PACKAGE:
        return "__init__"
    if name.startswith(PACKAGE + "."):
        first = name[len(PACKAGE) + 1 :].split(".")[0]
        return first if first in MODULES else None
    return None


def graph() -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` (stems; ``__init__`` = the package)."""
    out: dict[str, set[str]] = {}
    for module in MODULES:
        targets = {_local(name) for name in imported(module)}
        out[module] = {t for t in targets if t is not None and t != module}
    return out


def find_cycle(edges: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle as a path of modules, or ``None``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def reachable(edges: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_checker_sees_deferred_imports_and_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    # load.py is known to import build; the checker must see it.
    assert "build" in graph()["load"]


def test_the_config_package_has_no_import_cycle() -> None:
    assert find_cycle(graph()) is None


@pytest.mark.parametrize("reader", READERS)
def test_readers_do_not_import_the_loader_or_the_dataclass(reader: str) -> None:
    edges = graph()
    # Directly: neither the dataclass nor the build step nor the loader.
    assert not edges[reader] & {"cluster", "build", "load", "__init__"}, edges[reader]
    # Nor through another module: the readers only produce {path: Raw} mappings.
    assert not reachable(edges, reader) & {"build", "load", "__init__"}


def test_only_the_loader_imports_the_readers() -> None:
    importers = {m for m, targets in graph().items() if targets & set(READERS)}
    # tomcat_xml used to import web_xml; the loader combines them now.
    assert importers == {"load"}


def test_config_imports_nothing_else_of_the_project() -> None:
    # Config is the bottom floor: channel, sessions and web may import it, not the reverse.
    for module in MODULES:
        project = {n for n in imported(module) if n.startswith("clustersession")}
        assert all(n == PACKAGE or n.startswith(PACKAGE + ".") for n in project), module
