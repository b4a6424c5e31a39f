"""The package layout follows the pipeline: imports point one way, no circles, modules stay one idea.

The README's package map is the contract; this file checks the code keeps it. Imports are read from
the syntax tree (never by importing), so a function-level import counts as much as a top-level one:
it is still a dependency, only a hidden one. Imports under ``if TYPE_CHECKING:`` are annotations
only and do not count.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "backprop"

# The stages in pipeline order: a module may import from its own stage and the ones before it.
LAYERS = (
    "support",
    "expr",
    "language",
    "engine",
    "present",
    "verification",
    "codegen",
    "train",
    "grading",
    "cli",
)

# A module past this many lines usually holds two ideas (the guide says about 400).
MAX_LINES = 500


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(current: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every backprop module that `name` imports, wherever in the file the import is."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    skip: set[int] = set()
    for node in ast.walk(tree):
        if _type_checking_block(node):
            for inner in ast.walk(node):
                skip.add(id(inner))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node.level, node.module)
            # `from backprop.expr import ops` imports the module ops, not the package's __init__.
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t for t in submodules if t in known] or [base]
        for target in targets:
            if not target.startswith("backprop"):
                continue
            # `from backprop.expr import ops` names a module; `from backprop.expr.ops import Op` names
            # its attribute: keep the longest prefix that is a module.
            parts = target.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts:
                found.add(".".join(parts))
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def stage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit), components of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


# The root package re-exports the public API from every stage; `python -m backprop` starts the CLI.
ROOT_MODULES = {"backprop", "backprop.__main__"}


def test_every_module_is_in_a_stage() -> None:
    strays = [n for n in modules() if n not in ROOT_MODULES and stage(n) is None]
    assert not strays, f"modules outside the stages {LAYERS}: {strays}"


def test_imports_point_down_the_pipeline() -> None:
    upward = []
    for name, targets in graph().items():
        own = stage(name)
        if own is None:
            continue  # a root module (ROOT_MODULES) sits above every stage
        for target in sorted(targets):
            other = stage(target)
            if other is not None and LAYERS.index(other) > LAYERS.index(own):
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that point up the pipeline:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    cycles = strongly_connected(graph())
    assert not cycles, "modules that import each other in a circle:\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_cycle_finder_finds_a_planted_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(edges) == [["a", "b", "c"]]
    long_chain = {str(i): {str(i + 1)} for i in range(5000)} | {"5000": {"0"}}
    assert len(strongly_connected(long_chain)[0]) == 5001


def test_import_reader_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "if TYPE_CHECKING:\n    from backprop.cli import main\n"
        "def f():\n    from ..engine.chain import backward\n"
    )
    path = tmp_path / "a.py"
    path.write_text(source)
    known = {"backprop.expr", "backprop.expr.a", "backprop.expr.b", "backprop.engine.chain", "backprop.cli"}
    assert imports_of("backprop.expr.a", path, known) == {"backprop.expr.b", "backprop.engine.chain"}


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_holds_one_idea(name: str) -> None:
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by the ideas it holds"


def test_readme_map_lists_the_stages_in_order() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- package-map -->\s*```\n(.*?)```", readme, re.S)
    assert block, "README.md has no package map after <!-- package-map -->"
    listed = re.findall(r"^backprop/(\w+)/", block.group(1), re.M)
    assert listed == list(LAYERS)
    on_disk = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert sorted(listed) == on_disk, "every package folder is one stage of the map"
