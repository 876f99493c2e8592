"""The lab's own Python, as the build sees it: the ONE place the build names those files.

The hidden checks, their calls, the public checks and the data bundle are the lab's, not
the engine's (issue 21 moves them to source/<assignment>/). Everything the build needs of
them goes through this module: their source files, the names they ship under (inside
the autograder zip, beside the release and the nbgrader notebook), and the lab's tables
the build checks the master against. Re-point the paths here when the files move.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import course_config as cfg

_PACKAGE = Path(__file__).resolve().parent  # coursekit/

# --- where the lab's Python lives (source files) ---------------------------------------
CHECKS_SOURCE = _PACKAGE / "checks.py"  # the hidden checks: CASES, run_case
PUBLIC_CHECKS_SOURCE = _PACKAGE / "public_checks.py"  # the public checks: QUESTIONS, CHECKS
STUDENT_SIDE_SOURCE = _PACKAGE / "student_side.py"  # DEFINITIONS: what the grader's job looks up
# The lab's modules the autograder zip carries beside the engine (paths under coursekit/).
ZIP_MODULES = ("calls.py", "checks.py", "data.py")

# --- the names they ship under ---------------------------------------------------------
CHECKS_IMPORT = "attention_checks"  # what the master's hidden test cells import
CHECKS_MODULE = f"{CHECKS_IMPORT}.py"  # checks.py in otter assign's folder
PUBLIC_CHECKS_MODULE = "lab_checks.py"  # public_checks.py beside a student's notebook
SETTINGS_FILE = "attention_config.json"  # the training check's settings in the zip


def bundle_file() -> str:
    """The data bundle's file name in the zip."""
    return cfg.BUNDLE_FILE


def relative(path: Path) -> str:
    """`path` as a TA reads it in a message: relative to the repository where it can be."""
    try:
        return str(path.relative_to(cfg.REPO_ROOT))
    except ValueError:
        return str(path)


def hidden_cases() -> dict[str, str]:
    """The lab's hidden cases: case id -> the question it scores."""
    from coursekit import checks

    return {cid: case.question for cid, case in checks.CASES.items()}


def public_questions() -> dict[str, str]:
    """The lab's public checks: question -> the name of the student's object it checks."""
    from coursekit import public_checks

    return dict(public_checks.QUESTIONS)


def make_bundle(path: Path) -> Path:
    """Write the lab's data bundle (the seeded MNIST slice) to `path`."""
    from coursekit import data

    return data.make_bundle(path)


def checks_module() -> Any:
    """The hidden checks' module, for grading the solution in this process."""
    from coursekit import checks

    return checks
