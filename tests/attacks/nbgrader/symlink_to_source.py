"""The submitted notebook is a link to the instructor's source notebook (the solutions).

Stock nbgrader follows the link and grades the solutions: full marks. A link is not a
submission: 0 points, with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

SCORE = "none"  # no autograded point
NOTE = "is a link, not a file"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Make `path` (course/submitted/<student>/<assignment>/<nb>.ipynb) a relative link to
    course/source/<assignment>/<nb>.ipynb."""
    os.symlink(Path("..", "..", "..", "source", path.parent.name, path.name), path)
