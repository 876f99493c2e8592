"""Forged nbgrader metadata: hidden checks worth 100 points each and unlocked, every
checksum replaced, written answers marked as not graded.

Points, locks and checksums come from the course's gradebook, never from the submission.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "cells was changed and was replaced by the course's"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook with inflated points and forged checksums and flags."""
    for cell in work.cells:
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        meta["checksum"] = "0" * 32
        if meta.get("grade") and not meta.get("solution"):
            meta["points"] = 100
            meta["locked"] = False
        elif meta.get("grade"):
            meta["grade"] = False
    nbformat.write(work, path)
