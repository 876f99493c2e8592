"""The engine knows no lab (issue 21): walks the imports of every module of `coursekit/`.

- Nothing in `coursekit` imports `course_config` or a lab's package at import time: the
  course's settings and the lab are passed in (`coursekit.course`, `coursekit.lab`).
- Nothing in `coursekit` names a lab's package at all, even inside a function.
- The imports between `coursekit`'s modules (at import time or inside functions) have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "coursekit"
LABS = sorted(p.name for p in (ROOT / "source").iterdir() if (p / "__init__.py").is_file())


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at import time?) for every import statement of `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import mod` depends on the module; `from mod import name` on mod
                subs = [f"{base}.{a.name}" for a in child.names]
                if all(_is_module(s) for s in subs):
                    found.extend((s, top) for s in subs)
                else:
                    found.append((base, top))
            visit(child, nested)

    visit(tree, True)
    return found


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_walk_sees_imports():
    """The walker itself: it finds a known import-time and a known in-function import."""
    engine = _imports(MODULES["coursekit.engine"])
    assert ("coursekit.sandbox", True) in engine
    assert any(name == "coursekit.engine" and not top for name, top in _imports(MODULES["coursekit.course"]))
    assert LABS, "no lab folder found under source/"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_course_config_or_lab_at_import_time(module):
    bad = [name for name, top in _imports(MODULES[module]) if top
           and (name.split(".")[0] == "course_config" or name.split(".")[0] in LABS)]
    assert not bad, f"{module} imports {bad} at import time: pass the course and the lab in"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_lab_named_anywhere(module):
    bad = [name for name, _top in _imports(MODULES[module]) if name.split(".")[0] in LABS]
    assert not bad, f"{module} imports the lab {bad}: the engine gets the lab from coursekit.lab.load_lab"


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for name, _top in _imports(path):
            while name and name not in MODULES:  # `coursekit.sandbox.gpu.X` -> the module
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                # a package's __init__ is imported on the way to its modules: not an edge of
                # the module on its own package
                graph[module].add(name)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
