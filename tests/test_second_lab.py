"""A second lab is a second folder and a second entry in course_config.py (issue 21): the
minimal lab in tests/labs/scaling/ (one function, one hidden check) is graded by the same
engine, in a course of its own, 1/1 and 0/1."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from coursekit import course

ROOT = Path(__file__).resolve().parents[1]
LAB = Path(__file__).resolve().parent / "labs" / "scaling"


@pytest.fixture(scope="module")
def scaling_course(tmp_path_factory) -> course.Course:
    """A course whose only lab is the Scaling lab: course_config.py with LABS changed."""
    root = tmp_path_factory.mktemp("course")
    text = (ROOT / "course_config.py").read_text()
    text, n = re.subn(r"(?m)^LABS = .*$", 'LABS = ["scaling"]', text)
    assert n == 1
    (root / "course_config.py").write_text(text)
    shutil.copytree(LAB, root / "source" / "scaling", ignore=shutil.ignore_patterns("__pycache__"))
    return course.load(root / "course_config.py")


@pytest.fixture(scope="module")
def scaling_grader(scaling_course):
    grader = scaling_course.grader()
    yield grader
    grader.close()


def _submission(tmp_path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch"),
                                         nbformat.v4.new_code_cell(f"def scale(scores, temperature):\n    {body}")])
    path = tmp_path / "submission.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("body, total, line", [
    ("return scores / temperature", 1.0, None),
    ('raise NotImplementedError("scale is not implemented yet")', 0.0, "scale: not implemented yet"),
    ("return scores * temperature", 0.0, "scale: the result is not the scores divided by the temperature"),
])
def test_the_second_lab_grades_with_the_same_engine(scaling_course, scaling_grader, tmp_path, body, total, line):
    a = scaling_course.assignment()
    assert a.name == "scaling" and dict(a.points) == {"scale": 1.0}
    report = scaling_grader.grade_path(_submission(tmp_path, body))
    assert report.status == "ok", report.message
    assert report.total == total and report.possible == {"scale": 1.0}
    assert report.feedback()["scale"] == ([line] if line else [])
