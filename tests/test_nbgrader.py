"""The nbgrader course: built from the master, the standard nbgrader commands work in it,
every submission of the corpus gets the same per-question scores as under otter, and no
hidden test text reaches the release or any feedback file."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nbformat
import pytest

from tests.attacks import ATTACKS
from tests.helpers import (A as ASSIGNMENT, EXPECTED, LAB, SOLVED, SUBMISSIONS, ZERO, make_notebook, nbgrader,
                           nbgrader_hidden, nbgrader_scores, otter_run, question_scores, solution_lines,
                           stub_count)
from coursekit.lab import CheckFailed

pytestmark = pytest.mark.slow  # end to end; `make test-fast` skips it

A = ASSIGNMENT.name
# Besides the corpus: the solution itself, the untouched release, and an infinite loop in
# lookup (the shared attack: stopped at the call limit, graded and marked, not hung).
LOOP, LOOP_SCORES = ATTACKS["infinite_loop_in_lookup"]
TABLE = {**EXPECTED, "solution": SOLVED, "release": ZERO, "loop_in_lookup": LOOP_SCORES}


@pytest.fixture(scope="module")
def course(built, tmp_path_factory) -> Path:
    """A copy of the freshly built course, taken through generate_assignment, autograde
    (every submission in one run), generate_feedback and export."""
    root = tmp_path_factory.mktemp("nbgrader") / "course"
    shutil.copytree(built["nbgrader_course"], root)
    nbgrader(root, "generate_assignment", A)
    release = root / "release" / A / f"{A}.ipynb"
    subs = {"solution": nbformat.read(root / "source" / A / f"{A}.ipynb", as_version=4),
            "release": nbformat.read(release, as_version=4),
            "loop_in_lookup": make_notebook(release, LOOP)}
    subs.update({name: make_notebook(release, spec) for name, spec in SUBMISSIONS.items()})
    for student, nb in subs.items():
        folder = root / "submitted" / student / A
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{A}.ipynb")
    nbgrader(root, "autograde", A)
    nbgrader(root, "generate_feedback", A)
    nbgrader(root, "export")
    return root


def test_source_notebook_has_nbgrader_cells(built):
    nb = nbformat.read(built["nbgrader_source"], as_version=4)
    meta = [c.metadata["nbgrader"] for c in nb.cells]
    tests = {m["grade_id"]: m["points"] for m in meta if m["grade"] and not m["solution"]}
    assert tests == LAB.case_points(ASSIGNMENT.points)  # one autograded cell per hidden check, otter's points
    manual = {m["grade_id"]: m["points"] for m in meta if m["grade"] and m["solution"]}
    assert manual == {q: float(p) for q, p in ASSIGNMENT.manual_points.items()}
    answers = [m["grade_id"] for m in meta if m["solution"] and not m["grade"]]
    from coursekit.build.master import read_master

    code = [q.name for q in read_master(nbformat.read(ASSIGNMENT.master, as_version=4)).questions
            if not q.manual and q.has_solution]
    assert answers == [f"{q}_answer" for q in code]  # one answer cell per piece of code
    given = [m for m in meta if not m["grade"] and not m["solution"]]
    assert given and all(m["locked"] for m in given)


def test_release_has_no_hidden_tests_or_solutions(course):
    text = (course / "release" / A / f"{A}.ipynb").read_text()
    for secret in nbgrader_hidden() + ("BEGIN SOLUTION", "Model answer"):
        assert secret not in text
    assert [line for line in solution_lines() if line in text] == []
    assert text.count("raise NotImplementedError()") == stub_count()  # one per solution block


def test_scores_match_the_otter_table_over_the_corpus(course):
    assert nbgrader_scores(course) == TABLE


def test_scores_agree_with_otter_run(course, built, tmp_path):
    """The same code, as otter's and as nbgrader's submission, scored by both graders."""
    nb_scores = nbgrader_scores(course)
    for name in ("w12_uniform_weights",):  # test_grading compares otter with more entries
        path = tmp_path / name / f"{A}.ipynb"
        path.parent.mkdir()
        nbformat.write(make_notebook(built["release"], SUBMISSIONS[name]), path)
        otter = question_scores(otter_run(built["zip"], path, tmp_path / f"{name}-out"))
        assert tuple(otter.values()) == nb_scores[name]


def test_our_grader_ran_not_the_student_kernel(course):
    """Autograde used the sandboxed engine: the lab's own cells were not executed (stock
    nbgrader would have run them, downloading MNIST and training for 10 epochs)."""
    nb = nbformat.read(course / "autograded" / "solution" / A / f"{A}.ipynb", as_version=4)
    given = [c for c in nb.cells if c.cell_type == "code" and not c.metadata["nbgrader"]["grade"]]
    assert given and all(c.outputs == [] for c in given)


def test_feedback_never_shows_hidden_tests(course):
    files = sorted((course / "feedback").glob(f"*/{A}/{A}.html"))
    assert len(files) == len(TABLE)
    for path in files:
        html = path.read_text()
        for secret in nbgrader_hidden():
            assert secret not in html, (path, secret)
        assert "most recent call last" not in html  # no traceback, only one-line reasons


def test_feedback_gives_the_one_line_reasons(course):
    html = (course / "feedback" / "w01_softmax_wrong_dim" / A / f"{A}.html").read_text()
    assert "softmax over the queries, not the keys" in html
    loop = (course / "feedback" / "loop_in_lookup" / A / f"{A}.html").read_text()
    assert "timed out" in loop


def test_export_lists_every_student(course):
    rows = {r["student_id"]: r for r in csv.DictReader((course / "grades.csv").open())}
    assert set(rows) == set(TABLE)
    for student, scores in TABLE.items():
        assert float(rows[student]["score"]) == sum(scores)  # written answers: not yet graded
        assert float(rows[student]["max_score"]) == sum(ASSIGNMENT.points.values()) + sum(
            ASSIGNMENT.manual_points.values())


def test_feedback_strips_hidden_code_from_stock_tracebacks():
    """Were a course to put nbgrader's own executor back, a failing hidden test would carry a
    traceback quoting the hidden code: the feedback preprocessors cut it to one line."""
    from nbgrader.preprocessors import ClearHiddenTests

    from coursekit.nbgrader_plugin import OneLineErrors

    hidden = "### BEGIN HIDDEN TESTS\nfrom coursekit.nbgrader_plugin import check\n" \
             f"check({A!r}, 'lookup_shapes', lookup=lookup)\n### END HIDDEN TESTS"
    cell = nbformat.v4.new_code_cell("# Hidden check\n" + hidden)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "grade_id": "lookup_shapes", "points": 1.0, "schema_version": 3}
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="probe inputs: tensor(...)\n"),
        nbformat.v4.new_output("error", ename="CheckFailed",
                               evalue="lookup: wrong shape\nsecond line",
                               traceback=["Traceback (most recent call last)",
                                          f"check({A!r}, 'lookup_shapes', lookup=lookup)",
                                          "CheckFailed: lookup: wrong shape"])]
    nb = nbformat.v4.new_notebook(cells=[cell])
    for pre in (ClearHiddenTests(), OneLineErrors()):
        nb, _ = pre.preprocess(nb, {})
    text = nbformat.writes(nb)
    assert "check(" not in text and "most recent call last" not in text and "probe" not in text
    assert nb.cells[0].source == "# Hidden check"
    assert [o["traceback"] for o in nb.cells[0].outputs] == [["CheckFailed: lookup: wrong shape"]]


def test_hidden_cells_run_by_hand_in_the_source(built):
    """A TA running the source notebook (or a course that restores nbgrader's executor)
    gets the same verdicts from the hidden cells, in the kernel."""
    import torch

    nb = nbformat.read(built["nbgrader_source"], as_version=4)
    cell = next(c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] == "lookup_soft_softmax")
    right = {"lookup": lambda Q, K, soft=True: (torch.softmax if soft else lambda s, dim: s)(
        Q.float() @ K.float().transpose(-2, -1), dim=-1)}
    exec(cell.source, dict(right))
    wrong = {"lookup": lambda Q, K, soft=True: Q.float() @ K.float().transpose(-2, -1)}
    with pytest.raises(CheckFailed, match="soft lookup: the weights are not softmax"):
        exec(cell.source, dict(wrong))


def test_a_hidden_cell_runs_its_labs_check_by_hand(built):
    """The course's source notebook run by hand (or under nbgrader's stock executor): a
    hidden cell runs its own lab's check in the kernel (the cell names the lab, so no
    other lab's cases are searched): the solution passes, a wrong lookup fails it."""
    import torch

    from coursekit.lab import CheckFailed

    nb = nbformat.read(built["nbgrader_course"] / "source" / A / f"{A}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "lookup_soft_rows")
    assert f"check({A!r}, 'lookup_soft_rows', lookup=lookup)" in cell.source

    def lookup(Q, K, soft=True):
        s = torch.matmul(Q.float(), K.float().transpose(-2, -1))
        return torch.softmax(s, -1) if soft else s

    exec(cell.source, {"lookup": lookup})
    with pytest.raises(CheckFailed, match="rows of the weights do not sum to 1"):
        exec(cell.source, {"lookup": lambda Q, K, soft=True: torch.zeros(*Q.shape[:-1], K.shape[-2])})
    with pytest.raises(KeyError, match="no hidden check 'no_such_case'"):
        exec(cell.source.replace("'lookup_soft_rows'", "'no_such_case'"), {"lookup": lookup})
