"""How `nbgrader autograde` opens a submitted notebook: as hostile bytes, never fatally.

Stops: a submitted file that nbgrader's own reader would choke on or be fooled by — not
JSON, not a notebook, damaged cells, a link (to the instructor's solutions, or to another
student's work), a FIFO (nbgrader's `open()` would block the whole run), a file too large
to read. Stock nbgrader raises for this student (no autograded notebook, no feedback, the
run exits 1) or, for a link, grades what it points to.

`SafeNotebookExporter` is nbgrader's exporter (`Autograde.exporter_class`) with one change:
the notebook is read with `coursekit.submission.read_submission` (no links, bounded size,
strict JSON). A file it refuses becomes an empty notebook, and the reason goes into the
converter's `resources` (which the student cannot write) under `coursekit.unreadable`; the
repair step (`coursekit.nbgrader_repair`) turns that into the course's notebook graded as
empty, with the reason as the student's note.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters import NotebookExporter

from coursekit.submission import SubmissionError, read_submission

RESOURCE_KEY = "coursekit"  # our entry in nbconvert's resources dict


def unreadable_reason(resources: dict) -> str | None:
    """Why the submitted file could not be read (set by SafeNotebookExporter), or None."""
    entry = resources.get(RESOURCE_KEY)
    return entry.get("unreadable") if isinstance(entry, dict) else None


class SafeNotebookExporter(NotebookExporter):
    """nbgrader's NotebookExporter reading the file as hostile input, never raising for it."""

    def from_filename(self, filename: str, resources: dict | None = None,
                      **kw: Any) -> tuple[str, dict]:
        """Read `filename` strictly and run the preprocessors; an unreadable file becomes an
        empty notebook and `resources['coursekit']['unreadable']` says why."""
        if resources is None:
            resources = {}
        path = Path(filename)
        meta = resources.setdefault("metadata", {}) or {}
        resources["metadata"] = meta
        meta["name"], meta["path"] = path.stem, str(path.parent)
        try:  # lstat: the file itself, never what a link points to
            mtime = os.lstat(path).st_mtime
        except OSError:
            mtime = 0.0
        meta["modified_date"] = datetime.datetime.fromtimestamp(
            mtime, tz=datetime.timezone.utc).strftime("%B %-d, %Y")
        try:
            nb = read_submission(path)
        except SubmissionError as exc:
            resources.setdefault(RESOURCE_KEY, {})["unreadable"] = str(exc)  # logged by the repair
            nb = nbformat.v4.new_notebook()
        return self.from_notebook_node(nb, resources=resources, **kw)
