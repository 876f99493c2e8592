"""nbgrader metadata of the wrong JSON types: a string, a list, null, a grade_id that is a
list, a dict or empty, points that are text or 1e308, flags that are strings.

Stock nbgrader raises on these (TypeError, KeyError, jsonschema errors) and leaves the
student ungraded, or, for a schema it takes as old, stops the run. Here the hidden checks
keep their own grade_id with garbage beside it (the course's metadata replaces it); every
other cell's metadata names nothing, so those cells are graded as the student's own code.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "nbgrader metadata of"

NAMES_NOTHING = ["grade me", ["lookup_shapes"], None, {"grade_id": ["lookup_shapes"]},
                 {"grade_id": {"$ne": None}, "solution": 1},
                 {"grade_id": "", "grade": True, "points": 1e308}]


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook with garbage nbgrader metadata in every cell."""
    for i, cell in enumerate(work.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        if meta.get("grade") and not meta.get("solution"):  # a hidden check
            cell.metadata["nbgrader"] = {"grade_id": meta["grade_id"], "grade": "yes",
                                         "points": "NaN", "schema_version": "3"}
        else:
            cell.metadata["nbgrader"] = NAMES_NOTHING[i % len(NAMES_NOTHING)]
    nbformat.write(work, path)
