"""A notebook that claims another assignment, named with Markdown and HTML: the refusal
quotes that name in the student's grader note, which must stay plain text (no link, no
tag) in the feedback HTML.

0 points (the notebook is refused as another assignment's), with the reason.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "none"  # no autograded point
NOTE = "is a notebook of assignment"
NAME = "[grades](javascript:alert(1)) <img src=x onerror=alert(2)>"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook with otter metadata naming NAME as its assignment."""
    work.metadata["otter"] = {"assignment_name": NAME}
    nbformat.write(work, path)
