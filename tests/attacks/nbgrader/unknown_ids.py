"""Cells naming grade ids the assignment does not have: a "bonus" autograded cell worth 100
points, and the answer cells renamed.

Stock nbgrader deletes the unknown grade_id and then fails its own metadata check on the
leftover ("grade" without a grade_id): the student is not graded. Unknown cells stay the
student's own cells (their code still runs) and earn nothing.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "named no cell of this assignment"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook with a bonus cell and renamed answer cells."""
    for cell in work.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and not meta.get("grade"):
            meta["grade_id"] = "my_" + meta["grade_id"]
    bonus = nbformat.v4.new_code_cell("print('bonus')")
    bonus.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus", "locked": True,
                                  "points": 100, "schema_version": 3, "solution": False}
    work.cells.append(bonus)
    nbformat.write(work, path)
