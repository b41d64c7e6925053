"""The package's shape: stages import only the stages below them, no circles, small modules.

Small means at most 600 lines a module and 80 lines a function (from its ``def`` to its last
line, docstring included).

Every ``import`` counts, at the top of a module or inside a function. The stage order is the
pipeline's: the foundation modules at the top of ``batch`` (errors, config, logs, status,
files, crashpoints, tls), then intake, graph, run, reports, jobs, web, cli (the web app sits
beside the command line: only its ``serve`` command imports it). The simulator is a server
the product talks to over HTTPS: it imports only the foundation, and only ``graph.connect``
(which starts it when no tenant is configured) and the ``simulator`` commands import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "batch"
STAGES = ("intake", "graph", "run", "reports", "jobs", "web", "cli")
MAX_SIBLINGS = 8
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """Every batch module ``name`` imports, anywhere in its text."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("batch"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            targets.update(n for n in names if n in MODULES)
            if not any(n in MODULES for n in names):
                targets.add(node.module)
        elif isinstance(node, ast.Import):
            targets.update(a.name for a in node.names if a.name.startswith("batch."))
    return {t for t in targets if t in MODULES and t != name and not name.startswith(t + ".")}


EDGES = {name: _imports(name) for name in MODULES}


def _rank(name: str) -> int:
    """0 for the foundation, 1.. for the stages in pipeline order, 99 for the simulator."""
    parts = name.split(".")
    if len(parts) < 2 or parts[1] in ("__main__",):
        return len(STAGES) + 1
    if parts[1] == "simulator":
        return 99
    if parts[1] in STAGES:
        return STAGES.index(parts[1]) + 1
    return 0


def test_no_import_circles() -> None:
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(EDGES[node]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, path)
        path.pop()
        state[node] = 2

    for name in sorted(MODULES):
        if name not in state:
            visit(name, [])
    assert circles == []


def test_stages_import_only_stages_below_them() -> None:
    upward = [
        f"{name} -> {target}"
        for name, targets in EDGES.items()
        for target in targets
        if _rank(name) not in (99,)
        and _rank(target) != 99
        and _rank(target) > _rank(name)
        and _rank(name) <= len(STAGES)
        and not target.startswith(name.rsplit(".", 1)[0] + ".")
    ]
    assert upward == []


def test_the_simulator_is_reached_only_to_start_it() -> None:
    users = sorted(
        name
        for name, targets in EDGES.items()
        if not name.startswith("batch.simulator")
        and any(t.startswith("batch.simulator") for t in targets)
    )
    assert users == ["batch.cli.simulator", "batch.graph.connect"]
    reaching_out = sorted(
        f"{name} -> {target}"
        for name, targets in EDGES.items()
        if name.startswith("batch.simulator")
        for target in targets
        if not target.startswith("batch.simulator") and _rank(target) != 0
    )
    assert reaching_out == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_more_than_eight_others(name: str) -> None:
    assert len(EDGES[name]) <= MAX_SIBLINGS, sorted(EDGES[name])


def test_no_module_over_600_lines() -> None:
    long = {
        name: lines
        for name, path in sorted(MODULES.items())
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, long


def test_no_function_over_80_lines() -> None:
    long = []
    for name, path in sorted(MODULES.items()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name} (line {node.lineno}): {lines} lines")
    assert long == [], "\n".join(long)
