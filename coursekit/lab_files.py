"""A lab's files as the build ships them: the one place that names them.

The lab's Python and settings (`source/<lab>/*.py`, `lab.toml`) travel in the autograder
zip at the same path (`source/<lab>/`), beside the engine and course_config.py, so the zip
loads its lab exactly as the repository does (`coursekit.course.load(only=...)`). The public
checks ship beside a student's notebook under one name, whatever the lab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PUBLIC_CHECKS_MODULE = "lab_checks.py"  # the lab's public checks beside a student's notebook
LAB_FILE_PATTERNS = ("*.py", "lab.toml")  # what of a lab folder the zip carries (not the master)


def relative(path: Path, root: Path) -> str:
    """`path` as a TA reads it in a message: relative to the course's root where it can be."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def zip_files(assignment: Any) -> dict[str, Path]:
    """The lab's files the autograder zip carries: zip path -> file (an `Assignment`'s)."""
    folder = assignment.folder
    found = sorted({p for pattern in LAB_FILE_PATTERNS for p in folder.glob(pattern) if p.is_file()})
    return {f"source/{assignment.name}/{p.name}": p for p in found}
