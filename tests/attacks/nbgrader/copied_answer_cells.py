"""Answer cells copied and pasted (Jupyter keeps the metadata: same grade_id), a draft above.

Benign, but nbgrader's duplicate handling is what the duplicate attack breaks: the last
copy is the graded answer (nbgrader's rule) and the draft still runs, as the student's
own code, before it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "earlier copies of answer cells were kept as your own cells"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook with a broken draft copy above each answer cell."""
    cells = []
    for cell in work.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and not meta.get("grade") and cell.cell_type == "code":
            draft = copy.deepcopy(cell)
            draft.source = cell.source.replace("return ", "return None and ", 1)
            draft.pop("id", None)
            cells.append(draft)
        cells.append(cell)
    work.cells = cells
    nbformat.write(work, path)
