"""A second lab is a second folder and a second entry in course_config.py (issue 21): the
minimal lab in tests/labs/scaling/ (one function, one hidden check) is graded by the same
engine, in a course of its own, 1/1 and 0/1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from coursekit import course
from tests.helpers import edit

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


# --- built and graded by the same commands; a TA's three edits touch only the lab's folder ---

def _cli(root: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """`coursekit ARGS` for the course at `root` (COURSEKIT_CONFIG names its settings)."""
    env = {**os.environ, "COURSEKIT_CONFIG": str(root / "course_config.py"),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "coursekit", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _add_cells(master: Path, after_question: str, cells: list) -> None:
    """Insert `cells` after the END QUESTION of `after_question` (a TA editing the master)."""
    nb = nbformat.read(master, as_version=4)
    start = next(i for i, c in enumerate(nb.cells) if f"name: {after_question}" in c.source)
    end = next(i for i in range(start, len(nb.cells)) if nb.cells[i].source.strip() == "# END QUESTION")
    nb.cells[end + 1:end + 1] = cells
    nbformat.validator.normalize(nb)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    nbformat.write(nb, master)


def _three_ta_edits(lab: Path) -> None:
    """README's recipes, applied to the lab's folder only: points 1 -> 3, a written question,
    an autograded question `double(x)` with its hidden case and its public check."""
    new = nbformat.v4
    edit(lab / "lab.toml", "scale = 1", "scale = 3\ndouble = 2")  # points (and the new question's)
    edit(lab / "lab.toml", "why_scale = 1", "why_scale = 1\nwhy_double = 1")
    _add_cells(lab / "scaling.ipynb", "why_scale", [
        new.new_raw_cell("# BEGIN QUESTION\nname: why_double\nmanual: true"),
        new.new_markdown_cell("### 2.1 Question\nWhy double?"),
        new.new_raw_cell("# BEGIN SOLUTION"),
        new.new_markdown_cell("**Model answer.** Because twice is more."),
        new.new_raw_cell("# END SOLUTION"),
        new.new_raw_cell("# END QUESTION"),
        new.new_raw_cell("# BEGIN QUESTION\nname: double"),
        new.new_markdown_cell("### Task 2: implement `double`\n`double(x)` returns `2 * x`."),
        new.new_raw_cell("# BEGIN SOLUTION"),
        new.new_code_cell('def double(x):\n    """Twice x."""\n    """ # BEGIN PROMPT\n    # YOUR CODE HERE\n'
                          '    raise NotImplementedError("double is not implemented yet")\n    """ # END PROMPT\n'
                          '    # BEGIN SOLUTION NO PROMPT\n    return 2 * x\n    # END SOLUTION'),
        new.new_raw_cell("# END SOLUTION"),
        new.new_raw_cell("# BEGIN TESTS"),
        new.new_code_cell('""" # BEGIN TEST CONFIG\npoints: 0\n""" # END TEST CONFIG\ndef test_double_public(double):\n'
                          '    import lab_checks\n    lab_checks.require("double", double)\n\ntest_double_public(double)'),
        new.new_code_cell('""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\ndef test_double_values(double):\n'
                          '    import scaling_checks\n    scaling_checks.run_case("double_values", double=double)\n\n'
                          'test_double_values(double)'),
        new.new_raw_cell("# END TESTS"),
        new.new_raw_cell("# END QUESTION"),
    ])
    edit(lab / "calls.py", 'CALLS = [Call("scale", "scale", ("scores", "temperature"))]',
          'CALLS = [Call("scale", "scale", ("scores", "temperature")), Call("double", "double", ("scores",))]')
    edit(lab / "checks.py", 'CASES = {"scale_values": Case("scale", ("scale",), v_scale)}',
          'def v_double(outputs, p):\n'
          '    out = outputs.get("double")\n'
          '    if isinstance(out, StudentError):\n'
          '        raise CheckFailed(f"double: {out.kind}")\n'
          '    if not np.allclose(out["value"], 2 * p["scores"].numpy()):\n'
          '        raise CheckFailed("double: the result is not twice the input")\n\n\n'
          'CASES = {"scale_values": Case("scale", ("scale",), v_scale),\n'
          '         "double_values": Case("double", ("double",), v_double)}')
    edit(lab / "lab.py", 'definitions=("scale",)', 'definitions=("scale", "double")')
    edit(lab / "public_checks.py", 'QUESTIONS = {"scale": "scale"}', 'QUESTIONS = {"scale": "scale", "double": "double"}')
    edit(lab / "public_checks.py", "def failures(question, scale):\n    try:",
          "def failures(question, scale):\n    if question == \"double\":\n"
          "        return [] if torch.equal(scale(torch.ones(2)), torch.full((2,), 2.0)) else [\"double: not 2 x\"]\n"
          "    try:")


@pytest.mark.slow
def test_a_second_lab_and_a_tas_edits_build_and_grade_with_the_same_commands(tmp_path):
    """`coursekit build` and `coursekit grade` on a course whose lab is the Scaling lab, after
    the README's three recipes (points, a written question, an autograded question) edited
    the lab's folder only: the built solutions earn every point, the release none."""
    root = tmp_path / "course"
    (root / "source").mkdir(parents=True)
    text = re.sub(r"(?m)^LABS = .*$", 'LABS = ["scaling"]', (ROOT / "course_config.py").read_text())
    (root / "course_config.py").write_text(text)
    lab = root / "source" / "scaling"
    shutil.copytree(LAB, lab, ignore=shutil.ignore_patterns("__pycache__"))
    _three_ta_edits(lab)

    # the build's own two gradings of the solution are left out here for time (about 1.5 min;
    # test_build runs them for the course's lab): `coursekit grade` grades what was built below
    built = _cli(root, "build", "--no-run-tests")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    assert (root / "autograder" / "scaling" / "scaling-autograder.zip").is_file()
    release = root / "release" / "scaling" / "scaling.ipynb"
    text = release.read_text()
    assert "Why double?" in text and "double is not implemented yet" in text and "return 2 * x" not in text
    assert (root / "nbgrader_course" / "source" / "scaling" / "scaling.ipynb").is_file()

    graded = _cli(root, "grade", str(release), str(root / "solutions" / "scaling" / "scaling.ipynb"),
                  "--out", str(root / "out"), "--jobs", "1", "--quiet")
    assert graded.returncode == 0, graded.stdout[-2000:] + graded.stderr[-2000:]
    rows = (root / "out" / "grades.csv").read_text().splitlines()
    assert rows[0].startswith("student,scale,double,total,")
    assert sorted(r.split(",")[3] for r in rows[1:]) == ["0", "5"]
