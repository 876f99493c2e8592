"""Links to folders in the submitted folder (the instructor's source folder, relative and
absolute) and a dangling link.

Stock nbgrader's autograde fails this student on the dangling link (`shutil.copy` raises:
no autograded notebook, no feedback, the run exits 1). No link is followed or copied; the
notebook is graded as usual, and the note names each ignored link.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "were not copied"
NAMED = ("solutions", "course", "gone.txt")


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook, then links to course/source/<assignment>/ (relative), to the
    course folder (absolute) and to a path that does not exist."""
    nbformat.write(work, path)
    folder = path.parent
    os.symlink(Path("..", "..", "..", "source", folder.name), folder / "solutions")
    os.symlink(folder.parents[2].resolve(), folder / "course")
    os.symlink("/nonexistent/coursekit/gone.txt", folder / "gone.txt")
