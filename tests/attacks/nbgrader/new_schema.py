"""One cell's nbgrader metadata claims a schema newer than nbgrader 0.9.6 knows (99).

Stock nbgrader stops the whole autograde run ("newer version of the nbgrader metadata
format, please update nbgrader").
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "nbgrader metadata of 1 cell was changed"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook with schema_version 99 on its first hidden check."""
    cell = next(c for c in work.cells if c.metadata.get("nbgrader", {}).get("grade")
                and c.cell_type == "code")
    cell.metadata["nbgrader"]["schema_version"] = 99
    nbformat.write(work, path)
