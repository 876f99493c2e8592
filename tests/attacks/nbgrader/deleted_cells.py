"""Graded cells deleted: every hidden check, the public checks and one written answer.

The gradebook's graded cells are added back (checks judged on the student's code, the
missing written answer unanswered); the student's answers keep their points.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "graded cells were missing and were added back"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook without its test cells and its first written answer."""
    kept, dropped_answer = [], False
    for cell in work.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") \
                or str(meta.get("grade_id")).endswith("_public"):
            continue
        if meta.get("grade") and meta.get("solution") and not dropped_answer:
            dropped_answer = True
            continue
        kept.append(cell)
    work.cells = kept
    nbformat.write(work, path)
