"""Time `nbgrader autograde` in the generated course over the corpus of submissions.

Builds the course into a temporary folder, runs `nbgrader generate_assignment`, places
every corpus submission (29 notebooks) under submitted/, then times one
`nbgrader autograde` run (all students, one process, the sandboxed engine) and one
`nbgrader generate_feedback` run.

    .venv/bin/python benchmarks/nbgrader_bench.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from coursekit import course  # noqa: E402
from coursekit.build import build  # noqa: E402
from tests.helpers import SUBMISSIONS, make_notebook  # noqa: E402

A = course.load().assignment().name


def nbgrader(course: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        course = build(out_root=Path(tmp), run_tests=False, quiet=True)["nbgrader_course"]
        nbgrader(course, "generate_assignment", A)
        release = course / "release" / A / f"{A}.ipynb"
        for name, spec in SUBMISSIONS.items():
            folder = course / "submitted" / name / A
            folder.mkdir(parents=True)
            nbformat.write(make_notebook(release, spec), folder / f"{A}.ipynb")
        n = len(SUBMISSIONS)
        grade_s = nbgrader(course, "autograde", A)
        feedback_s = nbgrader(course, "generate_feedback", A)
    print(f"nbgrader autograde: {n} submissions in {grade_s:.1f} s ({grade_s / n:.2f} s each)")
    print(f"nbgrader generate_feedback: {n} submissions in {feedback_s:.1f} s")


if __name__ == "__main__":
    main()
