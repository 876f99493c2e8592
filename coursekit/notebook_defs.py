"""Load the definitions of a lab notebook (solutions or a submission) into a namespace.

Runs the notebook's code cells in order, as the autograder does: cells tagged
`otter_ignore` (data download, training, plots) and otter's own grader cells are
skipped, and a cell that raises does not stop the cells after it.
Only for trusted notebooks (benchmarks, tests): this runs the code in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

import course_config as cfg


def _skipped(cell: nbformat.NotebookNode) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    src = cell.source.lstrip()
    return (cell.cell_type != "code" or cfg.IGNORE_TAG in tags or "import otter" in src
            or src.startswith("grader."))


def load_definitions(path: str | Path) -> dict[str, Any]:
    """Execute the gradable cells of the notebook at `path` and return its globals."""
    namespace: dict[str, Any] = {"__name__": "__lab__"}
    for cell in nbformat.read(path, as_version=4).cells:
        if _skipped(cell):
            continue
        try:
            exec(compile(cell.source, f"<{Path(path).name} cell {cell.get('id', '?')}>", "exec"),
                 namespace)
        except Exception:  # as in the autograder: errors do not stop later cells
            continue
    return namespace
