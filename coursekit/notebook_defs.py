"""Load the definitions of a lab notebook (solutions or a submission) into a namespace.

Runs the same cells the grader runs (`coursekit.submission.gradable_cells`: not the cells
tagged `otter_ignore`, not otter's own cells), in order; a cell that raises does not stop
the cells after it. Only for trusted notebooks (benchmarks, tests): this runs the code in
this process, unlike the grader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat


def load_definitions(path: str | Path) -> dict[str, Any]:
    """Execute the gradable cells of the notebook at `path` and return its globals."""
    from coursekit.submission import gradable_cells

    namespace: dict[str, Any] = {"__name__": "__lab__"}
    for i, source in enumerate(gradable_cells(nbformat.read(path, as_version=4))):
        try:
            exec(compile(source, f"<{Path(path).name} cell {i}>", "exec"), namespace)
        except Exception:  # as in the grader: errors do not stop later cells
            continue
    return namespace
