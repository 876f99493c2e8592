"""Links among the other files of the submitted folder, pointing at the instructor's source
notebook (model answers and hidden tests): a relative link, an absolute one, and one in a
subfolder.

Stock nbgrader's autograde copies every other file of the folder into
autograded/<student>/<assignment>/ with `shutil.copy`, following links, and
`nbgrader generate_feedback` copies them on into the student's feedback folder: the student
gets the source notebook back. The links are not copied; the notebook is graded as usual
(full marks for the reference answers), and the note names each ignored link.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "were not copied"
NAMED = ("notes.txt", "secret.txt", "deep.txt")  # each ignored link, named in the note


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook, then three links to course/source/<assignment>/<nb>.ipynb beside
    and below it (path is course/submitted/<student>/<assignment>/<nb>.ipynb)."""
    nbformat.write(work, path)
    folder, assignment = path.parent, path.parent.name
    os.symlink(Path("..", "..", "..", "source", assignment, path.name), folder / "notes.txt")
    source = folder.parents[2].resolve() / "source" / assignment / path.name
    os.symlink(source, folder / "secret.txt")  # absolute: the instructor's own path
    (folder / "sub").mkdir()
    os.symlink(Path("..", "..", "..", "..", "source", assignment, path.name),
               folder / "sub" / "deep.txt")
