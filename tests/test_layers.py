"""The layer rules of docs/ARCHITECTURE.md, checked on the package's import graph (an AST walk).

Every import counts, also those inside functions, except imports made only for type checking.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "coverage"
NAME = "covplan"


def _module_name(path: Path) -> str:
    parts = (NAME, *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts).removesuffix(".__init__")


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


@functools.cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module -> the package modules it imports, parsed once per session.

    ``from a import b`` names ``a.b`` when that is a module.
    """
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    graph: dict[str, frozenset[str]] = {}
    for file in files:
        tree = ast.parse(file.read_text("utf-8"))
        skip = _type_checking_blocks(tree)
        found: set[str] = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] != NAME:
                    continue
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    found.add(child if child in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.split(".")[0] == NAME)
        graph[_module_name(file)] = frozenset(found - {_module_name(file)})
    return graph


def _cycles(graph: Mapping[str, Collection[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _in(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def test_the_walk_sees_known_edges() -> None:
    graph = import_graph()
    assert "covplan.engine.routing" in graph["covplan.engine.access"]
    assert "covplan.standards.presets" in graph["covplan.standards.parse"]
    assert len(graph) > 50


def test_no_import_cycle() -> None:
    assert _cycles(import_graph()) == []


def test_a_cycle_is_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("covplan.inputs", ["covplan.engine", "covplan.standards", "covplan.siting",
                            "covplan.outputs", "covplan.pipeline", "covplan.cli", "covplan.app"]),
        ("covplan.engine", ["covplan.standards", "covplan.siting", "covplan.outputs",
                            "covplan.scenario", "covplan.pipeline", "covplan.cli", "covplan.app"]),
        ("covplan.standards", ["covplan.engine", "covplan.siting", "covplan.outputs",
                               "covplan.pipeline", "covplan.cli", "covplan.app"]),
        ("covplan.outputs", ["covplan.pipeline", "covplan.cli", "covplan.app", "covplan.batch"]),
        ("covplan.planning", ["covplan.app", "covplan.cli"]),
    ],
)
def test_layer_rules(layer: str, forbidden: list[str]) -> None:
    broken = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items() if _in(module, layer)
        for target in targets if any(_in(target, f) for f in forbidden)
    )
    assert broken == []


def _imported_top_names(file: Path) -> set[str]:
    """Top-level names of every module a file imports (``import a.b`` and ``from a import``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_app_imports_streamlit() -> None:
    """Streamlit (and its components, ``streamlit_*``) belongs to ``covplan.app`` alone."""
    broken = sorted(
        f"{_module_name(f)} imports {name}"
        for f in PACKAGE.rglob("*.py") if not _in(_module_name(f), "covplan.app")
        for name in _imported_top_names(f)
        if name == "streamlit" or name.startswith("streamlit_")
    )
    assert broken == []


#: What the app may import of the package: its public-facing modules.
APP_ALLOWED = ("covplan", "covplan.api", "covplan.errors", "covplan.settings",
               "covplan.labels", "covplan.progress", "covplan.results", "covplan.scenario",
               "covplan.whatif", "covplan.planning")


def test_the_app_imports_public_modules_only() -> None:
    graph = import_graph()
    app = {m: targets for m, targets in graph.items() if _in(m, "covplan.app")}
    assert "covplan.planning" in app["covplan.app.page"]  # the walk sees the app's imports
    broken = sorted(
        f"{module} imports {target}"
        for module, targets in app.items()
        for target in targets
        if not _in(target, "covplan.app") and target not in APP_ALLOWED
    )
    assert broken == []


#: What the command line may import of the package: the functions behind its commands
#: (covplan.commands), batch runs, and the public-facing modules.
CLI_ALLOWED = ("covplan", "covplan.api", "covplan.commands", "covplan.batch", "covplan.errors",
               "covplan.settings", "covplan.labels", "covplan.progress", "covplan.results",
               "covplan.scenario")


def test_the_cli_imports_public_modules_only() -> None:
    graph = import_graph()
    cli = {m: targets for m, targets in graph.items() if _in(m, "covplan.cli")}
    assert "covplan.commands" in cli["covplan.cli"]  # the walk sees the command line's imports
    broken = sorted(
        f"{module} imports {target}"
        for module, targets in cli.items()
        for target in targets
        if not _in(target, "covplan.cli") and target not in CLI_ALLOWED
    )
    assert broken == []
