"""The house rules, checked on the source (``ast``, nothing imported): the core names no concrete
plugin, and santa's modules import each other without cycles.

Plugin packages hold the built-in plugins of each entry-point group. Code outside them (the
core: registry, pipeline engine, GPT skeleton, Lightning module, evaluation harness, CLI) may
import a group's contract module, never a concrete plugin: it asks the registry by name, as it
would for a third party's plugin.
"""

from __future__ import annotations

import ast
import graphlib
from dataclasses import dataclass
from pathlib import Path

import pytest

SANTA = Path(__file__).resolve().parents[1] / "santa"

# Plugin packages (or modules) -> the modules in them the core may import: the group's contract.
# ``santa.model.attention`` is one module: the shared layer the built-in variants and third
# parties subclass, and the variants themselves; the core needs neither (the GPT asks the registry
# for a class and uses only the contract of docs/plugins.md), so the whole module is off limits.
PLUGIN_PACKAGES: dict[str, frozenset[str]] = {
    "santa.filters": frozenset({"santa.filters", "santa.filters.base"}),
    "santa.objectives": frozenset({"santa.objectives", "santa.objectives.base"}),
    "santa.eval.tasks": frozenset({"santa.eval.tasks.base"}),
    "santa.model.attention": frozenset(),
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    top_level: bool  # runs when the importer is imported (not inside a function or TYPE_CHECKING)
    typing_only: bool  # under ``if TYPE_CHECKING:``: never runs


def module_name(root: Path, file: Path) -> str:
    parts = list(file.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, top_level: bool, typing_only: bool = False):
    """(import node, runs at import time, only for type checkers) for every import under ``node``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, top_level and not typing_only, typing_only
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(child, False, typing_only)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), top_level, True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), top_level, typing_only)
        else:
            # Class bodies run at import time; so do top-level try/if/with blocks.
            yield from _walk(child, top_level, typing_only)


def imports(root: Path) -> tuple[set[str], list[Import]]:
    """Every module under ``root`` (a package directory) and every import of a module of it."""
    files = sorted(root.rglob("*.py"))
    modules = {module_name(root, f) for f in files}
    found: list[Import] = []
    for file in files:
        name = module_name(root, file)
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(file.read_text(), filename=str(file))
        for node, top, typing_only in _walk(tree, True):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
                targets = [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            found += [Import(name, t, node.lineno, top, typing_only) for t in targets if t in modules]
    return modules, found


def _owner(module: str) -> str | None:
    for package in PLUGIN_PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return None


def plugin_violations(found: list[Import]) -> list[str]:
    out = []
    for imp in found:
        owner = _owner(imp.target)
        if owner is None or _owner(imp.importer) is not None:
            continue  # not a plugin module, or a plugin importing within the plugin packages
        if imp.target not in PLUGIN_PACKAGES[owner]:
            out.append(f"{imp.importer}:{imp.line} imports the plugin module {imp.target}")
    return out


def _package_member(imp: Import) -> bool:
    return imp.target.startswith(imp.importer + ".")


def import_cycle(found: list[Import], *, deferred: bool = False) -> list[str] | None:
    """One cycle of module-level imports, or None. ``deferred=True`` counts the imports inside
    functions too (a cycle hidden from the interpreter, not from the design), except a package's
    lazy imports of its own members (``santa.pipeline.__getattr__``)."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        runs = imp.top_level or (deferred and not imp.typing_only and not _package_member(imp))
        if runs and imp.target != imp.importer:
            graph.setdefault(imp.importer, set()).add(imp.target)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_the_core_imports_no_concrete_plugin() -> None:
    modules, found = imports(SANTA)
    for allowed in PLUGIN_PACKAGES.values():
        assert allowed <= modules, f"a contract module moved: {sorted(allowed - modules)}"
    assert {"santa.objectives.fim", "santa.filters.stars", "santa.eval.tasks.fim"} <= modules
    assert plugin_violations(found) == []


def test_santa_has_no_import_cycles() -> None:
    _, found = imports(SANTA)
    assert len([i for i in found if i.top_level]) > 100  # the walk saw santa's imports
    assert import_cycle(found) is None
    # Nor any hidden inside a function (the pipeline engine and its report had one).
    assert import_cycle(found, deferred=True) is None


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "santa"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checks_catch_what_they_forbid(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "cli.py": "def infill():\n    from santa.objectives.fim import infill_prompt\n",
            "engine.py": "import santa.report\nfrom santa.filters.base import Step\n",
            "report.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import santa.cli\n"
            "def f():\n    import santa.engine\n",
            "a.py": "from santa import b\n",
            "b.py": "from . import a\nfrom .filters import stars\n",
            "objectives/__init__.py": "from santa.objectives.base import Objective\n",
            "objectives/base.py": "",
            "objectives/fim.py": "from santa.objectives.base import Objective\n",
            "filters/__init__.py": "",
            "filters/base.py": "",
            "filters/stars.py": "from santa.filters.base import Step\n",
        },
    )
    _, found = imports(root)
    assert plugin_violations(found) == [
        "santa.b:2 imports the plugin module santa.filters.stars",
        "santa.cli:2 imports the plugin module santa.objectives.fim",
    ]
    # engine -> report -> engine only inside a function, report -> cli only for type checkers.
    cycle = import_cycle(found)
    assert cycle is not None and set(cycle) == {"santa.a", "santa.b"}
    (root / "b.py").write_text("")
    found = imports(root)[1]
    assert import_cycle(found) is None
    assert set(import_cycle(found, deferred=True) or ()) == {"santa.engine", "santa.report"}
    (root / "report.py").write_text("import santa.engine\n")
    assert set(import_cycle(imports(root)[1]) or ()) == {"santa.engine", "santa.report"}


@pytest.mark.parametrize(
    "plugin, label",
    [
        ("stars", "stars"),
        ("comments", "comment characters / characters"),
        ("fertility", "characters / token"),
        ("basic", "alphanumeric fraction (rejects: the failing statistic)"),
    ],
)
def test_filters_name_their_statistic_for_the_report(plugin: str, label: str) -> None:
    from santa import registry

    assert registry.get("santa.filters", plugin).stat_label == label
