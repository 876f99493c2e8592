"""The build: committed outputs match a fresh build, the release hides solutions and
hidden tests, and course_config.py and the master notebook cannot drift apart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nbformat
import pytest

from tests.helpers import A, COURSE, LAB, files_in_setup_cell, solution_lines, variant
from coursekit import build as B
from coursekit.build import graded_work
from coursekit.build.master import read_master


def test_committed_outputs_match_fresh_build(built):
    for kind, committed in (("release", A.release_dir), ("solutions", A.solutions_dir)):
        fresh = built[kind].read_bytes()
        assert (committed / f"{A.name}.ipynb").read_bytes() == fresh, (
            f"{committed} differs from a fresh build: run `make build` and commit")


def test_committed_nbgrader_course_matches_fresh_build(built):
    fresh, committed = built["nbgrader_course"], COURSE.nbgrader_course_dir
    for rel in ("nbgrader_config.py", ".gitignore", f"source/{A.name}/lab_checks.py",
                f"source/{A.name}/{A.name}.ipynb"):
        assert (committed / rel).read_bytes() == (fresh / rel).read_bytes(), (
            f"{committed / rel} differs from a fresh build: run `make build` and commit")


def test_zip_has_stable_name_and_bundles_data(built):
    import zipfile

    assert built["zip"].name == "attention_basics-autograder.zip"
    names = zipfile.ZipFile(built["zip"]).namelist()
    for needed in (f"grader_files/{A.data_file}", "otter_config.json", "coursekit/engine.py",
                   f"source/{A.name}/checks.py", f"source/{A.name}/lab.toml", "course_config.py"):
        assert needed in names
    assert not any(n.endswith(".ipynb") and n.startswith("source/") for n in names)  # the lab, not its master
    assert (A.folder / "tests").is_dir()  # the lab's own tests stay in the repository
    assert not any(n.startswith(f"source/{A.name}/tests/") for n in names)


def test_zip_copies_nothing_of_the_grader_beside_the_upload(built):
    """otter's runner copies the zip's files/ and tests/ into the submission's folder
    before any plugin runs: the zip has no files/, and its tests are placeholders that hold
    no hidden test, check name or seed (the verdicts come from the engine)."""
    import zipfile

    with zipfile.ZipFile(built["zip"]) as zf:
        names = zf.namelist()
        assert [n for n in names if n.startswith("files/")] == []
        tests = sorted(n for n in names if n.startswith("tests/"))
        assert tests == sorted(f"tests/{q}.py" for q in A.points)
        for name in tests:
            text = zf.read(name).decode()
            assert "graded_by_coursekit" in text
            for secret in B.HIDDEN_MARKERS + ("attention_basics.checks", "_SEED", "probes"):
                assert secret not in text, (name, secret)


def test_release_has_no_solution_code(built):
    text = built["release"].read_text()
    solution = solution_lines()
    assert solution  # the stubs' bodies
    leaked = [line for line in solution if line in text]
    assert leaked == []
    for marker in B.SOLUTION_MARKERS:
        assert marker not in text


def test_release_has_no_hidden_tests(built):
    nb = nbformat.read(built["release"], as_version=4)
    text = built["release"].read_text()
    hidden = [t for q in _master_questions() for t in q.hidden_tests]
    assert hidden
    for name in ("attention_checks", "hidden=True", "training_check",
                 *(t.function for t in hidden), *(f'"{c}"' for t in hidden for c in t.case_ids)):
        assert name not in text
    assert "tests" not in nb.metadata["otter"]  # no otter test in the metadata (Colab refuses them)
    files = files_in_setup_cell(nb.cells[0].source)
    assert sorted(files) == ["lab_checks.py", "lab_notebook.py"]  # no otter test file either


def test_release_stubs_raise_not_implemented(built):
    """One stub per piece of code students write, raising NotImplementedError("<name> is not
    implemented yet") (the README's recipe for a question)."""
    nb = nbformat.read(built["release"], as_version=4)
    assert nb.cells[0].metadata["cellView"] == "form"  # the set-up cell (it ships lab_checks.py)
    stubs = [c.source for c in nb.cells[1:] if "NotImplementedError" in c.source]
    code = [q.code_name for q in _master_questions() if not q.manual and q.has_solution]
    assert code and len(stubs) == len(code)
    for name, src in zip(code, stubs):
        assert f'raise NotImplementedError("{name} is not' in src


def test_solutions_are_clean_and_public_only(built):
    nb = nbformat.read(built["solutions"], as_version=4)
    text = "\n".join(c.source for c in nb.cells[1:])  # after the set-up cell
    assert "NotImplementedError" not in text and "BEGIN SOLUTION" not in text
    release = nbformat.read(built["release"], as_version=4)
    assert nb.cells[0].source == release.cells[0].source  # the same public checks
    assert "attention_checks" not in built["solutions"].read_text()


def test_manual_questions_have_model_answers(built):
    text = built["solutions"].read_text()
    assert text.count("**Model answer.**") == len(A.manual_points)
    assert "**Model answer.**" not in built["release"].read_text()


def test_points_come_from_lab_toml(tmp_path):
    a, c = variant(points={**A.points, "lookup": 7})
    staged = B.stage_master(A.master, tmp_path / "stage", _fake_bundle(tmp_path), a, c)
    questions = [c.source for c in nbformat.read(staged, as_version=4).cells
                 if c.cell_type == "raw" and c.source.startswith("# BEGIN QUESTION")]
    assert "# BEGIN QUESTION\nname: lookup\npoints: 7" in questions
    assert "# BEGIN QUESTION\nname: q6_2\nmanual: true\npoints: 2" in questions


def _fake_bundle(tmp_path: Path) -> Path:
    p = tmp_path / "fake.npz"
    p.write_bytes(b"")
    return p


def test_question_missing_from_lab_toml_is_an_error(tmp_path):
    a, c = variant(points={q: p for q, p in A.points.items() if q != "retrieve"})
    with pytest.raises(B.BuildError, match=r"question 'retrieve' has no points in source/attention_basics/lab\.toml "
                                           r"\(add `retrieve = 1` under \[points\]\)"):
        B.stage_master(A.master, tmp_path / "stage", _fake_bundle(tmp_path), a, c)


def test_config_question_missing_from_notebook_is_an_error(tmp_path):
    a, c = variant(manual_points={**A.manual_points, "q9_9": 1})
    with pytest.raises(B.BuildError, match="lacks: q9_9"):
        B.stage_master(A.master, tmp_path / "stage", _fake_bundle(tmp_path), a, c)


def test_unreadable_master_is_named(tmp_path):
    bad = tmp_path / "master.ipynb"
    bad.write_text("{not json")
    with pytest.raises(B.BuildError, match=f"{bad}: not a readable notebook"):
        B.stage_master(bad, tmp_path / "stage", _fake_bundle(tmp_path))


# --- the master's markup: broken blocks and written/autograded mix-ups (issue 11) -------

def _master_without(tmp_path: Path, drop) -> Path:
    """A copy of the master notebook without the first cell for which `drop(i, cell)` holds."""
    nb = nbformat.read(A.master, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if drop(i, c))
    del nb.cells[index]
    path = tmp_path / "master.ipynb"
    nbformat.write(nb, path)
    return path


def _end_of(question: str, marker: str):
    """Finds the cell `# END <marker>` that closes `question`'s block."""
    state = {"in": False}

    def drop(i, cell):
        if cell.cell_type != "raw":
            return False
        if cell.source.startswith("# BEGIN QUESTION"):
            state["in"] = f"name: {question}\n" in cell.source + "\n"
        return state["in"] and cell.source.strip() == f"# END {marker}"
    return drop


@pytest.mark.parametrize("question, marker", [("retrieve", "QUESTION"), ("q6_4", "QUESTION"),
                                              ("lookup", "TESTS"), ("q3_1", "SOLUTION"),
                                              ("forward", "SOLUTION")])
def test_missing_end_marker_is_an_error(tmp_path, question, marker):
    master = _master_without(tmp_path, _end_of(question, marker))
    with pytest.raises(B.BuildError) as err:
        B.stage_master(master, tmp_path / "stage", _fake_bundle(tmp_path))
    text = str(err.value)
    assert text.startswith(f"{master}: ")
    assert f"question '{question}'" in text and f"# END {marker}" in text


def test_missing_in_cell_end_solution_is_an_error(tmp_path):
    nb = nbformat.read(A.master, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "def retrieve(" in c.source)
    cell.source = cell.source.replace("# END SOLUTION", "")
    master = tmp_path / "master.ipynb"
    nbformat.write(nb, master)
    with pytest.raises(B.BuildError, match=r"question 'retrieve': .*'# BEGIN SOLUTION' line without its "
                                           r"'# END SOLUTION'"):
        B.stage_master(master, tmp_path / "stage", _fake_bundle(tmp_path))


def _master_with(tmp_path: Path, question: str, edit) -> Path:
    nb = nbformat.read(A.master, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "raw" and c.source.startswith("# BEGIN QUESTION")
                and f"name: {question}\n" in c.source + "\n")
    cell.source = edit(cell.source)
    path = tmp_path / "master.ipynb"
    nbformat.write(nb, path)
    return path


def test_written_question_without_manual_true_is_named(tmp_path):
    master = _master_with(tmp_path, "q3_1", lambda s: s.replace("manual: true", "").strip())
    with pytest.raises(B.BuildError) as err:
        B.stage_master(master, tmp_path / "stage", _fake_bundle(tmp_path))
    assert str(err.value) == (
        f"{master}: question 'q3_1' has points in [manual_points] of source/attention_basics/lab.toml "
        "(a written question) but its BEGIN QUESTION cell lacks `manual: true`")


def test_autograded_question_marked_manual_is_named(tmp_path):
    master = _master_with(tmp_path, "retrieve", lambda s: s + "\nmanual: true")
    with pytest.raises(B.BuildError) as err:
        B.stage_master(master, tmp_path / "stage", _fake_bundle(tmp_path))
    assert str(err.value) == (
        f"{master}: question 'retrieve' has points in [points] of source/attention_basics/lab.toml (an "
        "autograded question) but its BEGIN QUESTION cell says `manual: true` (written questions take "
        "their points from [manual_points])")


# --- the lists of graded work are generated from the questions (issue 11) ----------------

def _intro(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("# "))


def test_master_intro_has_the_placeholder_not_a_list():
    intro = _intro(A.master)
    assert graded_work.INTRO_PLACEHOLDER in intro and "You implement" not in intro


def _small_lab(written: int) -> nbformat.NotebookNode:
    """A master with one piece of code in section 1 and `written` written questions in section 2."""
    raw, md, code = nbformat.v4.new_raw_cell, nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [raw("# ASSIGNMENT CONFIG"), md(f"# A lab\n{graded_work.INTRO_PLACEHOLDER}"), md("## 1. Code"),
             raw("# BEGIN QUESTION\nname: f"), md("### Task 1: implement `f`"), raw("# BEGIN SOLUTION"),
             code("def f():\n    return 1"), raw("# END SOLUTION"), raw("# END QUESTION"), md("## 2. Words")]
    for n in range(1, written + 1):
        cells += [raw(f"# BEGIN QUESTION\nname: q2_{n}\nmanual: true"), md(f"### 2.{n} Question"),
                  raw("# BEGIN SOLUTION"), md("**Model answer.**"), raw("# END SOLUTION"), raw("# END QUESTION")]
    return nbformat.v4.new_notebook(cells=cells)


@pytest.mark.parametrize("written, sentence", [
    (2, "You implement one piece of code: `f` (section 1), and you answer the written questions 2.1 "
        "and 2.2 in the Markdown cells below them."),
    (1, "You implement one piece of code: `f` (section 1), and you answer the written question 2.1 in "
        "the Markdown cell below it."),
    (0, "You implement one piece of code: `f` (section 1).")])
def test_intro_lists_the_graded_work_from_the_questions(written, sentence):
    nb = _small_lab(written)
    assert graded_work.fill_intro(nb, read_master(nb).questions) is True
    assert nb.cells[1].source == f"# A lab\n{sentence}"


def test_staged_intro_lists_the_graded_work(tmp_path):
    staged = B.stage_master(A.master, tmp_path / "stage", _fake_bundle(tmp_path))
    sentence = graded_work.graded_work(_master_questions())
    assert sentence.startswith("You implement ") and sentence in _intro(staged)


def test_release_intro_lists_the_graded_work(built):
    intro = _intro(built["release"])
    assert graded_work.graded_work(_master_questions()) in intro
    assert graded_work.INTRO_PLACEHOLDER not in intro


def _master_questions() -> list:
    return read_master(nbformat.read(A.master, as_version=4)).questions


def test_committed_readme_lists_what_the_build_would_write():
    readme = (COURSE.root / "README.md").read_text()
    assert graded_work.README_BEGIN in readme and graded_work.README_END in readme
    assert graded_work.readme_with_questions(readme, _master_questions()) == readme, (
        "README.md's generated list of questions is stale: run `make build` and commit")


def test_build_rewrites_a_stale_readme_block():
    committed = (COURSE.root / "README.md").read_text()
    stale = committed.replace(graded_work.graded_work(_master_questions()), "You answer question 9.9.")
    assert stale != committed
    assert graded_work.readme_with_questions(stale, _master_questions()) == committed


def test_each_lab_rewrites_its_own_readme_block():
    """Two labs in one course: each build rewrites the block named after its lab; the
    unnamed block belongs to the first lab only; nothing else of README.md changes."""
    questions = _master_questions()
    old = "You answer question 9.9."
    readme = (f"intro\n{graded_work.README_BEGIN}\n{old}\n{graded_work.README_END}\nmiddle\n"
              f"  - {graded_work.readme_begin('second')}\n    {old}\n    {graded_work.README_END}\nend\n")
    new = graded_work.graded_work(questions)
    first = graded_work.readme_with_questions(readme, questions, "first_lab", first=True)
    assert first == readme.replace(f"{old}\n{graded_work.README_END}\nmiddle", f"{new}\n{graded_work.README_END}\nmiddle", 1)
    second = graded_work.readme_with_questions(readme, questions, "second", first=False)
    assert second == readme.replace(f"    {old}\n", f"    {new}\n")
    assert graded_work.readme_with_questions(readme, questions, "third", first=False) == readme


# --- a solution that fails its own tests: one line per failed case (issue 11) ------------

def test_solution_failing_its_tests_names_each_case(tmp_path):
    nb = nbformat.read(A.master, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "def lookup(" in c.source)
    assert "K.float().transpose(-2, -1)" in cell.source
    cell.source = cell.source.replace("K.float().transpose(-2, -1)", "K.float()")  # forgot Kᵀ
    master = tmp_path / "master.ipynb"
    nbformat.write(nb, master)
    _, c = variant(master=master)
    with pytest.raises(B.BuildError) as err:
        B.build(out_root=tmp_path / "out", quiet=True, course=c)
    text = str(err.value)
    assert "Traceback" not in text and 'File "' not in text
    head, *lines = text.splitlines()
    assert head.startswith(f"{master}: the solution fails its own hidden tests")
    lookup_cases = [cid for cid, case in LAB.cases.items() if case.question == "lookup"]
    assert [ln.split()[0] for ln in lines] == lookup_cases  # one line per failed case, no other
    raising = [ln for ln in lines if "raised RuntimeError" in ln]
    assert raising, text
    for line in raising:  # the exception text the solution raised, not only its type
        assert "[RuntimeError: " in line and "mat1 and mat2 shapes cannot be multiplied" in line


def test_otter_failure_keeps_only_meaningful_lines():
    output = """[IPKernelApp] WARNING | Kernel is running over TCP without encryption.
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/venv/otter/assign/utils.py", line 244, in run_tests
    raise RuntimeError(
RuntimeError: Some autograder tests failed in the autograder notebook:
    forward results: All test cases passed!

    lookup results:
        lookup_shapes result:
            ❌ lookup: raised RuntimeError
"""
    assert B.otter_failure_lines(output) == [
        "RuntimeError: Some autograder tests failed in the autograder notebook:",
        "    lookup results:", "        lookup_shapes result:", "            ❌ lookup: raised RuntimeError"]


def test_hidden_test_cells_and_checks_cases_cannot_drift(tmp_path):
    master = _master_without(tmp_path, lambda i, c: c.cell_type == "code" and "def test_retrieve_one_hot(" in c.source)
    with pytest.raises(B.BuildError, match=r"question 'retrieve': the lab's cases \(source/attention_basics/lab.py: Lab.cases\) scores "
                                           r"retrieve_one_hot for it, but no hidden test cell runs it"):
        B.stage_master(master, tmp_path / "stage", _fake_bundle(tmp_path))
    nb = nbformat.read(A.master, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "def test_retrieve_one_hot(" in c.source)
    cell.source = cell.source.replace('"retrieve_one_hot"', '"retrieve_new_case"')
    nbformat.write(nb, tmp_path / "master2.ipynb")
    with pytest.raises(B.BuildError, match=r"question 'retrieve': its hidden test cells run retrieve_new_case, "
                                           r"not a case of the lab's cases \(source/attention_basics/lab.py: Lab.cases\)"):
        B.stage_master(tmp_path / "master2.ipynb", tmp_path / "stage", _fake_bundle(tmp_path))


# --- a build is all or nothing (issue 21) ------------------------------------------------

def _output_paths(root: Path) -> list[Path]:
    """Every file a build writes under `root` (README.md's generated block included)."""
    rel = lambda p: root / p.relative_to(COURSE.root)  # noqa: E731
    course = rel(COURSE.nbgrader_course_dir)
    name = f"{A.name}.ipynb"
    return [rel(A.release_dir) / name, rel(A.solutions_dir) / name, rel(A.autograder_zip),
            course / "nbgrader_config.py", course / ".gitignore", course / "source" / A.name / name,
            course / "source" / A.name / "lab_checks.py", root / "README.md"]


def _files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def old_outputs(tmp_path: Path) -> Path:
    """An output folder holding a previous build's files (stand-in bytes), as a TA's checkout does."""
    root = tmp_path / "out"
    for i, path in enumerate(_output_paths(root)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"previous build, file {i}\n".encode())
    return root


def _master_with_question(tmp_path: Path, cells: list[nbformat.NotebookNode]) -> Path:
    """A copy of the master with `cells` inserted before the training question."""
    nb = nbformat.read(A.master, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "raw" and "name: training" in c.source)
    nb.cells[at:at] = cells
    path = tmp_path / "master.ipynb"
    nbformat.write(nb, path)
    return path


def _halve_question(hidden: bool) -> list[nbformat.NotebookNode]:
    """A TA's new autograded question, as issue 21's `scale(weights, temperature)` (named `halve`
    here: a name no lab of the course uses, so a TA who adds `scale` breaks no test)."""
    raw, md, code = nbformat.v4.new_raw_cell, nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    tests = [code('""" # BEGIN TEST CONFIG\npoints: 0\n""" # END TEST CONFIG\n'
                  'def test_halve_public(halve):\n    import lab_checks\n    lab_checks.require("halve", halve)\n\n'
                  'test_halve_public(halve)')]
    if hidden:
        tests.append(code('""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\n'
                          'def test_halve_values(halve):\n    import attention_checks\n'
                          '    attention_checks.run_case("halve_values", halve=halve)\n\n'
                          'test_halve_values(halve)'))
    return [raw("# BEGIN QUESTION\nname: halve"), md("### Task 4: implement `halve`\nDivide the weights."),
            raw("# BEGIN SOLUTION"), code("def halve(weights, temperature):\n    return weights / temperature"),
            raw("# END SOLUTION"), raw("# BEGIN TESTS"), *tests, raw("# END TESTS"), raw("# END QUESTION")]


def test_new_question_without_hidden_checks_changes_no_output(tmp_path, old_outputs):
    """Issue 21's TA: a new autograded question with no hidden check. The build names the
    master and what to add, and leaves every output of the previous build as it was."""
    master = _master_with_question(tmp_path, _halve_question(hidden=False))
    _, c = variant(master=master, points={**A.points, "halve": 1})
    before = _files_under(old_outputs)
    with pytest.raises(B.BuildError) as err:
        B.build(out_root=old_outputs, run_tests=False, quiet=True, course=c)
    assert _files_under(old_outputs) == before
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    assert text.startswith(f"{master}: autograded question 'halve' has no hidden checks: add")
    assert "Lab.cases" in text and "hidden: true" in text


def test_a_late_failure_changes_no_output(tmp_path, monkeypatch, old_outputs):
    """The nbgrader course is written last: when it fails, the release, solutions, zip and
    README written before it in the same build are not moved into place either."""
    from coursekit.build import nbgrader_course

    def broken(*args, **kwargs):
        raise B.BuildError("the nbgrader stage broke")

    monkeypatch.setattr(nbgrader_course, "write_course", broken)
    before = _files_under(old_outputs)
    with pytest.raises(B.BuildError, match="the nbgrader stage broke"):
        B.build(out_root=old_outputs, run_tests=False, quiet=True)
    assert _files_under(old_outputs) == before


def test_a_successful_build_replaces_every_output(old_outputs, monkeypatch):
    """...and reads the master's markup once (issue 21: three grammars read it three times)."""
    from coursekit.build import master

    reads = []
    monkeypatch.setattr(master, "read_master", lambda nb, _read=master.read_master: reads.append(1) or _read(nb))
    again = B.build(out_root=old_outputs, run_tests=False, quiet=True)
    assert len(reads) == 1
    after = _files_under(old_outputs)
    for path in _output_paths(old_outputs)[:-1]:  # README.md: the stand-in has no generated block
        assert not after[str(path.relative_to(old_outputs))].startswith(b"previous build"), path
    assert again["release"].read_bytes() == (A.release_dir / f"{A.name}.ipynb").read_bytes()


# --- build errors a TA can act on: the file and the fix, never a traceback (issue 21) ------

def _halve_case(master: Path | None = None, public_checks: Path | None = None):
    """The lab with the TA's hidden check for `halve` in its cases, and its points."""
    from coursekit.lab import Case

    case = Case("halve", ("retrieve_single",), lambda outputs, p: None)
    return variant(master=master, points={**A.points, "halve": 1}, cases={**LAB.cases, "halve_values": case},
                   public_checks=public_checks or LAB.public_checks)


def test_new_question_without_a_public_check_names_the_public_checks(tmp_path):
    """Issue 21: nbgrader_build.py raised a bare KeyError: 'scale' for this."""
    master = _master_with_question(tmp_path, _halve_question(hidden=True))
    a, c = _halve_case(master)
    with pytest.raises(B.BuildError) as err:
        B.stage_master(master, tmp_path / "stage", _fake_bundle(tmp_path), a, c)
    assert str(err.value) == (
        "source/attention_basics/public_checks.py: autograded question 'halve' has public test "
        "cells in master.ipynb but no public check: add 'halve' to QUESTIONS (the name students define, "
        "e.g. 'halve') and its checks to CHECKS")


def test_new_question_with_both_checks_stages(tmp_path):
    public = tmp_path / "public_checks.py"  # the lab's public checks, with the TA's for `halve`
    public.write_text(LAB.public_checks.read_text() + '\nQUESTIONS = {**QUESTIONS, "halve": "halve"}\n')
    master = _master_with_question(tmp_path, _halve_question(hidden=True))
    a, c = _halve_case(master, public)
    staged = B.stage_master(master, tmp_path / "stage", _fake_bundle(tmp_path), a, c)
    sources = [c.source for c in nbformat.read(staged, as_version=4).cells]
    assert "# BEGIN QUESTION\nname: halve\npoints: 1" in sources


def test_cases_of_a_question_the_master_lacks_name_the_checks(tmp_path):
    a, c = _halve_case()
    a = dataclasses.replace(a, points=dict(A.points))
    c = dataclasses.replace(c, assignments={A.name: a})
    with pytest.raises(B.BuildError) as err:
        B.stage_master(A.master, tmp_path / "stage", _fake_bundle(tmp_path), a, c)
    assert str(err.value).startswith("the lab's cases (source/attention_basics/lab.py: Lab.cases) has cases for "
                                     "'halve', which attention_basics.ipynb has no autograded question for")


def test_a_hidden_cell_running_two_cases_is_named(tmp_path):
    nb = nbformat.read(A.master, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "def test_retrieve_one_hot(" in c.source)
    cell.source = cell.source.replace('attention_checks.run_case("retrieve_one_hot", retrieve=retrieve)',
                                      'attention_checks.run_case("retrieve_one_hot", retrieve=retrieve)\n'
                                      '    attention_checks.run_case("retrieve_values", retrieve=retrieve)')
    master = tmp_path / "master.ipynb"
    nbformat.write(nb, master)
    with pytest.raises(B.BuildError, match=r"^.*master.ipynb: question 'retrieve': its hidden test cell \(cell \d+\) "
                                           r"runs retrieve_one_hot, retrieve_values: give each case its own"):
        B.stage_master(master, tmp_path / "stage", _fake_bundle(tmp_path))


# --- the one reader of the master's markup (issue 21) -------------------------------------

def test_reader_gives_each_question_its_cells():
    from coursekit.build.master import Role

    nb = nbformat.read(A.master, as_version=4)
    parsed = read_master(nb)
    assert sorted(q.name for q in parsed.questions if not q.manual) == sorted(A.points)
    assert sorted(q.name for q in parsed.questions if q.manual) == sorted(A.manual_points)
    cases = {cid: case.question for cid, case in LAB.cases.items()}
    for q in parsed.questions:
        kinds = {nb.cells[i].cell_type for i in q.solution_cells}
        assert kinds == ({"markdown"} if q.manual else {"code"} if q.has_solution else set())
        hidden = [cid for t in q.hidden_tests for cid in t.case_ids]
        assert sorted(hidden) == sorted(c for c, owner in cases.items() if owner == q.name)
        assert not (q.manual and q.tests)
        for t in q.tests:
            assert parsed.roles[t.index] is Role.TEST and t.function.startswith("test_")
            assert "BEGIN TEST CONFIG" not in t.body
    assert parsed.roles[parsed.config_cell] is Role.CONFIG


def test_reader_follows_otter_on_fenced_markers():
    """otter also takes a Markdown cell holding an ```otter fence as a raw marker cell:
    the reader does too, since it asks otter's own predicates."""
    raw, md, code = nbformat.v4.new_raw_cell, nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(cells=[
        raw("# ASSIGNMENT CONFIG\ninit_cell: false"),
        md("```otter\n# BEGIN QUESTION\nname: q1\nmanual: true\n```"),
        md("### 1.1 Question"), raw("# BEGIN SOLUTION"), md("answer"), raw("# END SOLUTION"),
        md("```otter\n# END QUESTION\n```"), code("x = 1")])
    parsed = read_master(nb)
    assert [(q.name, q.manual, q.number, q.solution_cells) for q in parsed.questions] == [("q1", True, "1.1", [4])]


def test_zip_scoring_the_solutions_wrongly_names_what_only_the_zip_has(tmp_path, monkeypatch):
    """Issue 21's TA saw `❌ scale: not defined (run the cell that defines it)`, a student's
    message, for a solution that defines `scale`: the build's message says where to look."""
    from coursekit.build import zip_check

    def results(label: str) -> dict:
        tests = [{"name": q, "score": 0.0 if label == "release" else float(p), "max_score": float(p),
                  "output": "✅"} for q, p in A.points.items()]
        if label == "solutions":
            tests[1].update(score=0.0, output="❌ retrieve: not defined (run the cell that defines it)")
        return {"tests": tests}

    monkeypatch.setattr(zip_check, "_start", lambda zip_path, nb, out: out.name)
    monkeypatch.setattr(zip_check, "_results", lambda proc, out, what: results(proc))
    with pytest.raises(B.BuildError) as err:
        zip_check.check_zip(tmp_path / "x-autograder.zip", tmp_path / "s.ipynb", tmp_path / "r.ipynb", tmp_path, A)
    head, line, detail = str(err.value).splitlines()
    assert head.startswith("x-autograder.zip: the autograder zip does not grade the built notebooks")
    assert "Lab.definitions in source/attention_basics/lab.py" in head
    assert line.startswith("self-check solutions: ") and line.endswith("FAILED")
    assert detail == "  retrieve: ❌ retrieve: not defined (run the cell that defines it)"


def test_outputs_that_cannot_all_be_copied_change_nothing(tmp_path, monkeypatch):
    """Moving into place is copies beside the targets first, renames after: a copy that
    fails (a full disk) leaves every target and no stray copy."""
    import shutil

    from coursekit.build.outputs import StagedOutputs

    root = tmp_path / "root"
    outputs = StagedOutputs(root, tmp_path / "staging")
    for i, name in enumerate(("a/one.txt", "b/two.txt", "c/three.txt")):
        (root / name).parent.mkdir(parents=True)
        (root / name).write_text(f"old {i}")
        outputs.path(root / name).write_text(f"new {i}")
    before = _files_under(root)
    real, calls = shutil.copyfile, []

    def copy_then_fail(src, dst, **kwargs):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copy_then_fail)
    with pytest.raises(B.BuildError, match="No space left on device.*no output was changed"):
        outputs.commit()
    assert _files_under(root) == before
    monkeypatch.setattr(shutil, "copyfile", real)
    assert sorted(p.name for p in outputs.commit()) == ["one.txt", "three.txt", "two.txt"]
    assert _files_under(root) == {"a/one.txt": b"new 0", "b/two.txt": b"new 1", "c/three.txt": b"new 2"}
