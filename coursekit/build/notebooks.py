"""The release and solutions notebooks, from otter assign's student and autograder notebooks:
reproducible bytes, the set-up cell first, and nothing handed out that must not be."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from coursekit import release_setup
from coursekit.build.errors import BuildError

SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "# SOLUTION", "BEGIN PROMPT", "END PROMPT")
HIDDEN_MARKERS = ("hidden: true", "BEGIN TEST CONFIG", "run_case")
_SOLUTION_LINE = re.compile(r"#\s*(BEGIN|END) SOLUTION( NO PROMPT)?\s*$")


def without_prompt(source: str) -> list[str]:
    """A solution cell's lines without otter's in-cell prompt (the stub students get)."""
    kept, in_prompt = [], False
    for line in source.split("\n"):
        stripped = line.rstrip()
        if stripped.endswith("# BEGIN PROMPT"):
            in_prompt = True
        elif stripped.endswith("# END PROMPT"):
            in_prompt = False
        elif not in_prompt:
            kept.append(line)
    return kept


def is_solution_marker(line: str) -> re.Match | None:
    """The in-cell `# BEGIN SOLUTION` / `# END SOLUTION` marker on `line`, if any."""
    return _SOLUTION_LINE.search(line.rstrip())


def clean_solution_source(source: str) -> str:
    """Drop otter's solution and prompt markers (and the prompt stub) from a solution cell."""
    return "\n".join(ln for ln in without_prompt(source) if not is_solution_marker(ln))


def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Make a generated notebook reproducible: no outputs, counts or random cell ids."""
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    return nb


def make_release(student: nbformat.NotebookNode, setup: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """otter's student notebook as released: the set-up cell `setup` first, no otter tests.

    The first cell's lab_checks.py runs the public checks without otter (issue 20), and
    Colab refuses tests kept in notebook metadata.
    """
    student.metadata["otter"].pop("tests", None)
    student.metadata["otter"].pop("OK_FORMAT", None)  # otter requires it only with tests
    return normalise(release_setup.with_setup_cell(student, setup))


def make_solutions(autograder: nbformat.NotebookNode, release: nbformat.NotebookNode,
                   setup: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solutions notebook: clean solution code, and only the public tests (as released)."""
    solution = normalise(release_setup.with_setup_cell(autograder, setup))
    for cell in solution.cells:
        if cell.cell_type == "code":
            cell.source = clean_solution_source(cell.source)
    solution.metadata["otter"] = release.metadata["otter"]
    return solution


def check_release(path: Path, hidden_only: bool = False) -> None:
    """Fail the build if a notebook handed out carries solution markers or hidden-test text."""
    text = path.read_text()
    for marker in HIDDEN_MARKERS + (() if hidden_only else SOLUTION_MARKERS):
        if marker in text:
            raise BuildError(f"{path}: the student release contains '{marker}'")
