"""Cells of the wrong type: the hidden checks turned into Markdown, the answer cells into
raw cells.

The course's cell type wins (as in stock nbgrader, which converts them back): the answers
run as code, the checks are the course's.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "cells whose type was changed were changed back"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook with hidden checks as Markdown and answers as raw cells."""
    cells = []
    for cell in work.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            new = nbformat.v4.new_markdown_cell(cell.source, metadata=cell.metadata)
        elif cell.cell_type == "code" and meta.get("solution"):
            new = nbformat.v4.new_raw_cell(cell.source, metadata=cell.metadata)
        else:
            new = cell
        cells.append(new)
    work.cells = cells
    nbformat.write(work, path)
