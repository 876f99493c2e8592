"""The release's first cell installs nothing: `grader` works from the files it writes.

Each run is a fresh Python (`-I`) in an empty folder holding only the notebook, where
`otter`, `pip` and `coursekit` cannot be imported (None in sys.modules) and where an audit
hook refuses any new process (subprocess, os.system, exec, spawn) while the first cell,
`grader.check`, `grader.check_all` and `grader.export` run (torch is imported before: its
own import asks ldconfig where libdl is). The lines `grader.check`
shows must be the ones coursekit.public_checks gives in this process: the same lines
students saw when `grader` was otter's Notebook (issue 20).

Also: the files the cell writes parse as Python 3.9 and use nothing of 3.10+ that
`ast.parse(feature_version=(3, 9))` lets through.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.helpers import A, COURSE, LAB, RELEASE, UNANSWERED, WRONG, files_in_setup_cell, make_notebook
from attention_basics import public_checks
from coursekit import lab_notebook, release_setup
from coursekit.notebook_defs import load_definitions
from coursekit.submission import gradable_cells

SOLUTIONS = A.solutions_dir / f"{A.name}.ipynb"
VARIANT = "w21_scaled_only_when_soft"  # a wrong lookup: one property line
QUESTIONS = list(public_checks.QUESTIONS)

# Runs in the fresh Python: argv[1] is a JSON file {"setup": source, "cells": [source]}.
DRIVER = r'''
import contextlib, io, json, sys

BLOCKED = ("otter", "pip", "coursekit", "course_config")
for _name in BLOCKED:  # as if not installed: import raises, importlib.util.find_spec is None
    sys.modules[_name] = None
GUARD = {"on": False}
EVENTS = []
PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                  "os.fork", "os.forkpty", "pty.spawn")


def hook(event, args):
    if GUARD["on"] and event.startswith(PROCESS_EVENTS):
        EVENTS.append(f"{event} {args!r}"[:300])
        raise RuntimeError(f"{event} is refused in this test")


sys.addaudithook(hook)
import torch  # noqa: E402,F401 - before the guard: torch's own import runs ldconfig (ctypes)
payload = json.load(open(sys.argv[1], encoding="utf-8"))
ns = {"__name__": "__main__"}
out = {}


def guarded(code):
    GUARD["on"] = True
    try:
        exec(code, ns)
    finally:
        GUARD["on"] = False


guarded(compile(payload["setup"], "<first cell>", "exec"))
out["before"] = {q: repr(eval(f"grader.check({q!r})", ns)) for q in payload["questions"]}
for i, cell in enumerate(payload["cells"]):
    exec(compile(cell, f"<cell {i}>", "exec"), ns)  # the student's code: not guarded
GUARD["on"] = True
out["after"] = {q: repr(eval(f"grader.check({q!r})", ns)) for q in payload["questions"]}
out["check_all"] = repr(eval("grader.check_all()", ns))
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    returned = eval("grader.export(pdf=False)", ns)
GUARD["on"] = False
out["export"] = printed.getvalue()
out["export_returned"] = repr(returned)
out["events"] = EVENTS
out["otter_loaded"] = sorted(m for m, mod in sys.modules.items() if m.split(".")[0] in BLOCKED and mod)
out["lab_checks_file"] = sys.modules["lab_checks"].__file__
print("RESULT " + json.dumps(out))
'''


def first_cell(path: Path) -> str:
    return nbformat.read(path, as_version=4).cells[0].source


def run_release(nb_path: Path, folder: Path) -> dict:
    """The first cell and `nb_path`'s gradable cells, then the grader's calls, in a fresh
    otter-less Python in `folder` (which holds only the notebook)."""
    folder.mkdir()
    nb = nbformat.read(nb_path, as_version=4)
    nbformat.write(nb, folder / f"{A.name}.ipynb")
    payload = folder.parent / f"{folder.name}.json"
    payload.write_text(json.dumps({"setup": nb.cells[0].source, "cells": gradable_cells(nb),
                                   "questions": QUESTIONS}))
    proc = subprocess.run([sys.executable, "-I", "-c", DRIVER, str(payload)], cwd=folder,
                          capture_output=True, text=True, timeout=600)
    result = next((line for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert proc.returncode == 0 and result, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(result[len("RESULT "):])


def lines_for(namespace: dict, question: str) -> list[str]:
    """The lines `grader.check(question)` has always shown (issue 10's format)."""
    name = public_checks.QUESTIONS[question]
    if name not in namespace:
        return [f"❌ {question}: `{name}` is not defined yet: run the cell that defines it first"]
    failures = public_checks.failures(question, namespace[name])
    return ([f"❌ {line}" for line in failures]
            or [f"✅ {question}: every public check passed (the hidden tests decide the grade)"])


def test_committed_first_cell_is_what_release_setup_writes():
    assert first_cell(RELEASE) == release_setup.setup_source(A.name, LAB.public_checks)
    assert first_cell(SOLUTIONS) == release_setup.setup_source(A.name, LAB.public_checks)


def test_first_cell_has_no_install_step():
    source = release_setup.setup_source(A.name, LAB.public_checks)
    assert not re.search(r"\bpip\b|subprocess|os\.system|^\s*[!%]", source, re.M)
    assert sorted(files_in_setup_cell(source)) == ["lab_checks.py", "lab_notebook.py"]


@pytest.mark.parametrize("variant", ["solutions", "release", VARIANT])
def test_first_cell_makes_grader_without_otter(variant, tmp_path):
    if variant == "solutions":
        nb_path = SOLUTIONS
    elif variant == "release":
        nb_path = RELEASE
    else:
        nb_path = tmp_path / "variant.ipynb"
        nbformat.write(make_notebook(RELEASE, WRONG[variant]), nb_path)
    folder = tmp_path / "student"
    got = run_release(nb_path, folder)

    assert got["events"] == [] and got["otter_loaded"] == []  # nothing installed, otter unused
    assert Path(got["lab_checks_file"]).parent == folder  # the checks the cell wrote
    assert got["before"] == {q: "\n".join(lines_for({}, q)) for q in QUESTIONS}
    namespace = load_definitions(nb_path)
    want = {q: lines_for(namespace, q) for q in QUESTIONS}
    assert {q: text.split("\n") for q, text in got["after"].items()} == want
    assert got["check_all"].split("\n") == [line for q in QUESTIONS for line in want[q]]
    failing = {q for q, lines in want.items() if lines[0].startswith("❌")}
    # a corpus entry keeps the stubs of the questions the corpus does not answer
    assert failing == {"solutions": set(), "release": set(QUESTIONS), VARIANT: {"lookup", *UNANSWERED}}[variant]
    # no otter, not Colab: one line naming the notebook to upload, and no zip
    assert got["export"].splitlines() == [lab_notebook.upload_line(f"{A.name}.ipynb")]
    assert got["export_returned"] == "None" and not list(folder.glob("*.zip"))
    written = {p.name for p in folder.iterdir()} - {"__pycache__"}
    assert written == {f"{A.name}.ipynb", "lab_checks.py", "lab_notebook.py"}  # no tests/


def test_colab_submit_line_is_one_line():
    line = lab_notebook.COLAB_SUBMIT
    assert "\n" not in line and "Download .ipynb" in line and "upload" in line


# --- the shipped files run under Python 3.9-3.13 --------------------------------------------

# Modules the shipped files may import: in the standard library of 3.9 to 3.13 (none that
# 3.12/3.13 removed), torch, IPython and otter where installed, and each other.
ALLOWED_IMPORTS = {"__future__", "glob", "html", "math", "os", "re", "sys", "torch", "IPython",
                   "otter", "lab_checks", "coursekit"}
# 3.10+ library names ast cannot date: taken from a module or an object, and builtins
NEWER_NAMES = {"pairwise", "batched", "bit_count", "TypeAlias", "ParamSpec", "TypeGuard", "Self",
               "override", "UTC"}
NEWER_BUILTINS = {"anext", "aiter", "EncodingWarning", "ExceptionGroup"}
BUILTIN_TYPES = {"int", "float", "str", "bool", "bytes", "list", "dict", "tuple", "set", "type",
                 "object", "None"}


def _typeish(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and node.value is None:
        return True
    if isinstance(node, ast.Subscript):
        node = node.value
    return isinstance(node, ast.Name) and node.id in BUILTIN_TYPES


def _annotations(tree: ast.AST) -> list[ast.AST]:
    """Every annotation in `tree` (arguments, returns, annotated assignments)."""
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            args += [a for a in (node.args.vararg, node.args.kwarg) if a]
            found += [a.annotation for a in args if a.annotation] + [node.returns] * bool(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return found


def newer_syntax(source: str) -> list[str]:
    """What in `source` needs Python 3.10+ (empty when it runs on 3.9)."""
    tree = ast.parse(source, feature_version=(3, 9))  # match, except*, 3.12 generics...
    lazy = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
               and any(a.name == "annotations" for a in n.names) for n in tree.body)
    found = []
    in_annotations = set()
    for ann in _annotations(tree):
        ors = [n for n in ast.walk(ann) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)]
        in_annotations.update(id(n) for n in ors)
        if ors and not lazy:
            found.append(f"line {ann.lineno}: `X | Y` annotation evaluated at runtime")
    lines = source.splitlines()
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and id(node) not in in_annotations
                and (_typeish(node.left) or _typeish(node.right))):
            found.append(f"{where}: `X | Y` of types")
        if isinstance(node, ast.With):  # `with (a as b, c as d):` - ast.parse takes it
            last = node.items[-1].optional_vars or node.items[-1].context_expr
            rest = lines[last.end_lineno - 1][last.end_col_offset:]
            if rest.lstrip().startswith(")"):
                found.append(f"{where}: parenthesised context managers")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "zip"
                and any(k.arg == "strict" for k in node.keywords)):
            found.append(f"{where}: zip(strict=...)")
        if isinstance(node, ast.Name) and node.id in NEWER_BUILTINS:
            found.append(f"{where}: {node.id} (3.10+)")
        if isinstance(node, ast.Attribute) and node.attr in NEWER_NAMES:
            found.append(f"{where}: .{node.attr} (3.10+)")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where}: imports {n}" for n in names if n.split(".")[0] not in ALLOWED_IMPORTS]
        if isinstance(node, ast.ImportFrom):
            found += [f"{where}: {a.name} (3.10+)" for a in node.names if a.name in NEWER_NAMES]
    return found


@pytest.mark.parametrize("name", ["lab_checks.py", "lab_notebook.py"])
def test_shipped_files_are_python_39(name):
    text = files_in_setup_cell(release_setup.setup_source(A.name, LAB.public_checks))[name]
    assert newer_syntax(text) == []


@pytest.mark.parametrize("source, problem", [
    ("match x:\n    case 1:\n        pass\n", SyntaxError),
    ("with (open('a') as f, open('b') as g):\n    pass\n", "parenthesised"),
    ("def f(x: int | None):\n    pass\n", "annotation"),
    ("isinstance(1, int | float)\n", "of types"),
    ("list(zip([1], [2], strict=True))\n", "strict"),
    ("from itertools import pairwise\n", "pairwise"),
    ("import distutils\n", "imports distutils"),
])
def test_newer_syntax_is_caught(source, problem):
    if problem is SyntaxError:
        with pytest.raises(SyntaxError):
            newer_syntax(source)
    else:
        assert any(problem in line for line in newer_syntax(source)), newer_syntax(source)


def test_lazy_annotations_and_ordinary_or_pass():
    assert newer_syntax("from __future__ import annotations\ndef f(x: int | None): pass\n") == []
    assert newer_syntax("flags = 1 | 2\nwith (a or b) as c:\n    pass\nwith f(x):\n    pass\n") == []


def test_find_notebook_prefers_the_editor_record_then_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("notes.ipynb", "attention_basics (1).ipynb"):
        (tmp_path / name).write_text("{}")
    assert lab_notebook.find_notebook("attention_basics.ipynb") == "attention_basics (1).ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "notes.ipynb"))
    assert lab_notebook.find_notebook("attention_basics.ipynb") == str(tmp_path / "notes.ipynb")
    monkeypatch.delenv("JPY_SESSION_NAME")
    (tmp_path / "attention_basics (1).ipynb").unlink()
    assert lab_notebook.find_notebook("attention_basics.ipynb") == "notes.ipynb"  # the only one
    monkeypatch.setattr(lab_notebook, "_user_ns", lambda: {"__vsc_ipynb_file__": str(tmp_path / "notes.ipynb")})
    assert lab_notebook.find_notebook("attention_basics.ipynb") == str(tmp_path / "notes.ipynb")  # VS Code
    monkeypatch.setattr(lab_notebook, "_user_ns", lambda: {})
    (tmp_path / "notes.ipynb").unlink()
    assert lab_notebook.find_notebook("attention_basics.ipynb") is None


def test_setup_cell_ships_the_checks_and_no_hidden_test(built):
    nb = nbformat.read(built["release"], as_version=4)
    first = nb.cells[0]
    assert first.metadata["tags"] == [COURSE.rules.ignore_tag] and first.metadata["cellView"] == "form"
    files = files_in_setup_cell(first.source)
    assert sorted(files) == ["lab_checks.py", "lab_notebook.py"]
    assert files["lab_checks.py"] == LAB.public_checks.read_text()
    for text in files.values():
        assert "hidden=True" not in text and "attention_checks" not in text and "run_case" not in text
    assert "tests" not in nb.metadata["otter"]  # no test kept in metadata (Colab refuses them)
