"""Read-only (locked) cells edited: every given code cell emptied (the imports go with
them) and every hidden check replaced by `pass`.

Locked cells are the instructor's: the course's text is restored (as stock nbgrader does),
so the student's answers run with the given imports and earn their points.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "edited read-only cells were restored"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook with the locked code cells' text replaced."""
    for cell in work.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("locked") and not meta.get("solution"):
            cell.source = "pass"
    nbformat.write(work, path)
