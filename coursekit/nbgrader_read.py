"""How `nbgrader autograde` opens a submitted notebook: as hostile bytes, never fatally.

Stops: a submitted file that nbgrader's own reader would choke on or be fooled by — not
JSON, not a notebook, damaged cells, a link (to the instructor's solutions, or to another
student's work), a FIFO (nbgrader's `open()` would block the whole run), a file too large
to read. Stock nbgrader raises for this student (no autograded notebook, no feedback, the
run exits 1) or, for a link, grades what it points to.

`SafeNotebookExporter` is nbgrader's exporter with one change (autograde uses it through
`coursekit.nbgrader_folder.FolderCheckedExporter`, which also checks the folder around it):
the notebook is read with `coursekit.submission.read_submission` (no links, bounded size,
strict JSON). A file it refuses becomes an empty notebook, and the reason goes into the
converter's `resources` (which the student cannot write) under `coursekit.unreadable`; the
repair step (`coursekit.nbgrader_repair`) turns that into the course's notebook graded as
empty, with the reason as the student's note.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters import NotebookExporter

from coursekit.submission import Rules, SubmissionError, read_submission

RESOURCE_KEY = "coursekit"  # our entry in nbconvert's resources dict


def unreadable_reason(resources: dict) -> str | None:
    """Why the submitted file could not be read (set by SafeNotebookExporter), or None."""
    entry = resources.get(RESOURCE_KEY)
    return entry.get("unreadable") if isinstance(entry, dict) else None


def folder_notes(resources: dict) -> list[str]:
    """Lines for the student's note about the rest of their folder (files not copied, a
    timestamp not used), set by `coursekit.nbgrader_folder.FolderCheckedExporter`."""
    entry = resources.get(RESOURCE_KEY)
    notes = entry.get("notes") if isinstance(entry, dict) else None
    return list(notes) if isinstance(notes, list) else []


def _rules(resources: dict) -> Rules:
    """The course's submission rules (size, ignored cells) for the assignment nbgrader grades:
    a notebook of another assignment is refused, as `coursekit grade` and otter refuse it."""
    from coursekit import course

    assignment = (resources.get("nbgrader") or {}).get("assignment")
    return dataclasses.replace(course.load().rules, assignment=assignment if isinstance(assignment, str) else None)


class SafeNotebookExporter(NotebookExporter):
    """nbgrader's NotebookExporter reading the file as hostile input, never raising for it."""

    def from_filename(self, filename: str, resources: dict | None = None,
                      **kw: Any) -> tuple[str, dict]:
        """Read `filename` strictly and run the preprocessors; an unreadable file becomes an
        empty notebook and `resources['coursekit']['unreadable']` says why (a reason already
        there, from a subclass that refuses the file unread, stands)."""
        if resources is None:
            resources = {}
        path = Path(filename)
        meta = resources.setdefault("metadata", {}) or {}
        resources["metadata"] = meta
        meta["name"], meta["path"] = path.stem, str(path.parent)
        refused = unreadable_reason(resources) is not None
        try:  # lstat: the file itself, never what a link points to
            mtime = 0.0 if refused else os.lstat(path).st_mtime
        except OSError:
            mtime = 0.0
        meta["modified_date"] = datetime.datetime.fromtimestamp(
            mtime, tz=datetime.timezone.utc).strftime("%B %-d, %Y")
        nb = nbformat.v4.new_notebook()
        if not refused:
            try:
                nb = read_submission(path, _rules(resources))
            except SubmissionError as exc:  # logged by the repair
                resources.setdefault(RESOURCE_KEY, {})["unreadable"] = str(exc)
        return self.from_notebook_node(nb, resources=resources, **kw)
