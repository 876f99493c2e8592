"""Every cell's nbgrader metadata claims an old schema (1, or no schema_version at all: 0).

Stock nbgrader stops the whole autograde run ("old version of the nbgrader metadata
format, ... run nbgrader update"). The course's metadata replaces the student's.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "cells was changed and was replaced by the course's"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook with schema versions 1 and 0 (missing) alternating."""
    for i, cell in enumerate(work.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is not None:
            if i % 2:
                meta["schema_version"] = 1
            else:
                meta.pop("schema_version", None)
    nbformat.write(work, path)
