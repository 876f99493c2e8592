"""A submission file that is not JSON at all (binary garbage).

Stock nbgrader logs a traceback for this student and ends the run with an error; the
student gets no autograded notebook and no feedback. It is graded as empty: 0 points,
with the reason.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "none"  # no autograded point
NOTE = "could not be read"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write bytes that are neither UTF-8 nor JSON."""
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)) * 4)
