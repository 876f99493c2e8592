"""Each locked hidden-check cell duplicated before the original (same grade_id, 50 points).

Stock nbgrader strips the first copy's metadata to `{}`, then its metadata check takes
that for "an old version of the nbgrader metadata format" and ends the whole autograde
run: no other student is graded. The student must get their own full marks, not the 50
points each copy claims.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "extra copies of read-only cells were removed"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook with every hidden check cell doubled."""
    cells = []
    for cell in work.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
            twin = copy.deepcopy(cell)
            twin.metadata["nbgrader"]["points"] = 50
            twin.source = "print('all checks passed')"
            twin.pop("id", None)
            cells.append(twin)
        cells.append(cell)
    work.cells = cells
    nbformat.write(work, path)
