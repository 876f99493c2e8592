"""One nbgrader submission never stops the others (issue 18).

One `nbgrader autograde` run grades the solution, the untouched release and every attack
in tests/attacks/nbgrader/ (duplicated ids, old, new, missing or forged nbgrader metadata,
edited, retyped or deleted cells, garbage files, a link to the solutions, links and FIFOs
beside the notebook, a linked folder, timestamp.txt as garbage, huge, a link or a FIFO).
The same run grades the shared attacks that every front door runs (tests/attacks,
EVERY_DOOR: students `door_<attack>`). The run must finish with exit status 0; each
attacker gets the points their code earns (or 0) and one line in their feedback saying
why; the solution still gets full marks and the release 0. No link of a submitted folder is followed: nothing of the instructor's reaches
an autograded or feedback folder.
"""

from __future__ import annotations

import copy
import csv
import datetime
import importlib.util
import os
import shutil
import stat
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

from tests.attacks import ATTACKS as SHARED, EVERY_DOOR, SECRETS as GRADER_SECRETS
from tests.helpers import (A as ASSIGNMENT, COURSE, REF_FORWARD, REF_LOOKUP, REF_RETRIEVE, SOLVED, Spec, TOTAL,
                           make_notebook, nbgrader, nbgrader_hidden, nbgrader_scores)

pytestmark = pytest.mark.slow  # one end-to-end autograde run; `make test-fast` skips it

A = ASSIGNMENT.name
ATTACKS_DIR = Path(__file__).parent / "attacks" / "nbgrader"
NOTE_MARK = "Grader note"
SOLUTION_TIME = "2024-05-01 12:00:00.000000 UTC"
# text of the instructor's source notebook, in none of the files students get
SECRETS = ("Model answer", "SOLUTION", "BEGIN HIDDEN TESTS", "nbgrader_plugin")


def _attacks() -> dict[str, ModuleType]:
    """Every attack module in tests/attacks/nbgrader/, by file name."""
    out = {}
    for path in sorted(ATTACKS_DIR.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"nbgrader_attack_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out[path.stem] = module
    return out


ATTACKS = _attacks()


def _points(attack: ModuleType) -> float:
    """The autograded points an attack's student must get (its SCORE, "full" or "none"): its
    work is the corpus's reference (tests.helpers.TOTAL)."""
    return {"full": TOTAL, "none": 0.0}[attack.SCORE]


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The committed nbgrader course (a test elsewhere checks it matches a fresh build), taken
    through generate_assignment, one autograde run for every student, and generate_feedback."""
    root = tmp_path_factory.mktemp("nbgrader-hostile") / "course"
    # nbgrader's own folders, should a TA have run it in the checkout (its .gitignore)
    shutil.copytree(COURSE.nbgrader_course_dir, root, ignore=shutil.ignore_patterns(
        "gradebook.db", "release", "submitted", "autograded", "feedback", "exchange", "*.csv"))
    nbgrader(root, "generate_assignment", A)
    release_path = root / "release" / A / f"{A}.ipynb"
    release = nbformat.read(release_path, as_version=4)
    work = make_notebook(release_path, Spec(REF_LOOKUP, REF_RETRIEVE, REF_FORWARD))

    def folder(student: str) -> Path:
        path = root / "submitted" / student / A
        path.mkdir(parents=True)
        return path / f"{A}.ipynb"

    solution = folder("solution")
    nbformat.write(nbformat.read(root / "source" / A / f"{A}.ipynb", as_version=4), solution)
    (solution.parent / "timestamp.txt").write_text(SOLUTION_TIME)  # a valid one is kept
    nbformat.write(release, folder("release"))
    for name, attack in ATTACKS.items():
        attack.submit(folder(name), copy.deepcopy(work))
    for name in EVERY_DOOR:  # the shared attacks: extra cells, nbgrader's metadata untouched
        nbformat.write(make_notebook(release_path, SHARED[name][0]), folder(f"door_{name}"))
    log = nbgrader(root, "autograde", A)  # asserts exit status 0
    (root / "autograde.log").write_text(log)
    nbgrader(root, "generate_feedback", A)
    nbgrader(root, "export")
    return root


def _feedback(course: Path, student: str) -> str:
    return (course / "feedback" / student / A / f"{A}.html").read_text()


def test_every_student_is_graded(course):
    """Every student has a row: the solution full marks, the release 0, each attacker their points."""
    scores = {s: sum(per) for s, per in nbgrader_scores(course).items()}
    want = {"solution": sum(SOLVED), "release": 0.0, **{n: _points(a) for n, a in ATTACKS.items()},
            **{f"door_{n}": sum(SHARED[n][1]) for n in EVERY_DOOR}}
    assert scores == pytest.approx(want)


@pytest.mark.parametrize("name", EVERY_DOOR)
def test_shared_attack_gets_the_score_of_its_code(course, name):
    """Each shared attack scores, question by question, what its code without the attack
    earns (as in-process, under `coursekit grade` and `otter run`), and its feedback shows
    nothing of the grader's (it does show the student's own cells, so their word LEAK)."""
    assert nbgrader_scores(course)[f"door_{name}"] == SHARED[name][1]
    html = _feedback(course, f"door_{name}")
    for secret in nbgrader_hidden() + GRADER_SECRETS + ("Model answer",):
        assert secret not in html, (name, secret)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_feedback_says_why_in_one_line(course, name):
    """The attacker's feedback carries one grader note, and it names what was done."""
    html = _feedback(course, name)
    assert html.count(NOTE_MARK) == 1, name
    line = html[html.index(NOTE_MARK):].split("\n")[0]
    assert ATTACKS[name].NOTE in line, (name, line)
    for ignored in getattr(ATTACKS[name], "NAMED", ()):  # each file that was not copied
        assert ignored in line, (name, ignored, line)


def test_no_note_for_untouched_notebooks(course):
    for student in ("solution", "release"):
        assert NOTE_MARK not in _feedback(course, student)


def test_feedback_never_shows_hidden_tests_or_solutions(course):
    """The course's hidden checks go back into every rebuilt notebook (feedback strips
    them); the answers put back for an unreadable file are the release's stubs."""
    for student in ("solution", "release", *ATTACKS):
        html = _feedback(course, student)
        for secret in nbgrader_hidden() + (() if student == "solution" else ("Model answer", "SOLUTION")):
            assert secret not in html, (student, secret)


def _tree(folder: Path) -> list[Path]:
    """Every entry under `folder`, links not followed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        out += [Path(dirpath, n) for n in dirnames + filenames]
    return out


@pytest.mark.parametrize("step", ["autograded", "feedback"])
def test_no_link_of_a_submitted_folder_is_followed(course, step):
    """What autograde and generate_feedback wrote for each student holds only regular files
    and folders (no link, no FIFO), and none but the solution's holds the source notebook's
    text: the graded notebook of autograded/ keeps the hidden checks (the rebuild puts them
    back), every other file is checked whole."""
    for student in ("release", *ATTACKS):
        folder = course / step / student / A
        assert folder.is_dir() and not folder.is_symlink(), (step, student)
        for entry in _tree(folder):
            mode = entry.lstat().st_mode
            assert stat.S_ISREG(mode) or stat.S_ISDIR(mode), (step, student, entry)
            if stat.S_ISDIR(mode) or (step == "autograded" and entry.suffix == ".ipynb"):
                continue
            data = entry.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, (step, student, entry, secret)
    for student in ("links_beside_the_notebook", "links_to_folders", "fifo_beside_the_notebook"):
        names = {p.name for p in _tree(course / "autograded" / student / A)}
        assert not names & set(ATTACKS[student].NAMED), (student, names)


def test_a_bad_timestamp_counts_as_none(course):
    """A timestamp.txt that is not a readable time is treated as missing (no submission
    time in the gradebook, none copied on); a valid one is recorded and copied as before."""
    from nbgrader.api import Gradebook

    bad = [s for s in ATTACKS if s.startswith("timestamp_")]
    assert len(bad) == 4
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        times = {s: gb.find_submission(A, s).timestamp for s in ("solution", *bad)}
    assert times == {"solution": datetime.datetime(2024, 5, 1, 12), **dict.fromkeys(bad)}
    assert (course / "autograded" / "solution" / A / "timestamp.txt").read_text() == SOLUTION_TIME
    for student in bad:
        for step in ("autograded", "feedback"):
            path = course / step / student / A / "timestamp.txt"
            assert not os.path.lexists(path), path


def test_export_has_every_student(course):
    """`nbgrader export` (the gradebook only) lists every student, nothing of the source."""
    text = (course / "grades.csv").read_text()
    rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(text.splitlines())}
    assert rows == pytest.approx({"solution": sum(SOLVED), "release": 0.0,
                                  **{n: _points(a) for n, a in ATTACKS.items()},
                                  **{f"door_{n}": sum(SHARED[n][1]) for n in EVERY_DOOR}})
    assert not any(secret in text for secret in SECRETS)


def _course_cell(name: str, cell_type: str = "code", *, grade: bool = False,
                 solution: bool = False, points: float | None = None):
    from coursekit.nbgrader_repair import CourseCell

    return CourseCell(name=name, cell_type=cell_type, source=f"# {name}", released=f"# {name}",
                      checksum="0" * 32, locked=not solution, grade=grade, solution=solution,
                      task=False, points=points, tags=())


def _student(source: str, gid: str | None = None, cell_type: str = "code", **meta) -> dict:
    cell = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}[
        cell_type](source)
    if gid is not None:
        cell.metadata["nbgrader"] = {"grade_id": gid, **meta}
    return cell


def test_rebuild_rules():
    """The rules on a tiny course: read-only cells are the course's (last copy's place,
    other copies dropped), answers keep the student's text (earlier copies stay as the
    student's own cells), unknown ids are the student's own cells, and missing graded
    cells come back after the course cell before them."""
    from coursekit.nbgrader_repair import note_line, rebuild

    course = [_course_cell("intro", "markdown"), _course_cell("answer", solution=True),
              _course_cell("check_a", grade=True, points=1.0),
              _course_cell("check_b", grade=True, points=2.0), _course_cell("outro", "markdown")]
    cells = [_student("# check_a", "check_a", points=50.0),  # a copy, dropped
             _student("# intro", "intro", cell_type="markdown"),
             _student("def f(): return 0", "answer"),  # an earlier copy: the student's own
             _student("def f(): return 1", "answer"),
             _student("print('mine')"),
             _student("hacked", "check_a"),  # edited, and worth 50 in its metadata
             _student("x = 1", "bonus", grade=True, points=100)]
    released = {c.name: "0" * 32 for c in course}
    out, repairs = rebuild(cells, course, released)
    got = [(c.cell_type, c.source, c.metadata.get("nbgrader", {}).get("grade_id")) for c in out]
    assert got == [("markdown", "# intro", "intro"), ("code", "def f(): return 0", None),
                   ("code", "def f(): return 1", "answer"), ("code", "print('mine')", None),
                   ("code", "# check_a", "check_a"), ("code", "# check_b", "check_b"),
                   ("code", "x = 1", None)]
    assert [c.metadata["nbgrader"]["points"] for c in out if "check" in c.source] == [1.0, 2.0]
    assert dict(repairs) == {"dropped copies": 1, "answer copies": 1, "edited": 1, "metadata": 3,
                             "unknown": 1, "missing graded": 1, "missing other": 1}
    line = note_line(repairs)
    assert "\n" not in line and line.startswith("your notebook was repaired before grading: ")


def test_the_note_is_one_line_of_sentences():
    from coursekit.nbgrader_repair import join_lines

    parts = ["2 files of your folder were not copied.", "", "your notebook was repaired."]
    assert join_lines(parts) == "2 files of your folder were not copied. Your notebook was repaired."
    assert join_lines(["", "your notebook was repaired."]) == "your notebook was repaired."
    assert join_lines([]) == ""


def test_the_note_is_plain_text(course):
    """A note quoting the submission renders as text: no link, no tag of the student's."""
    html = _feedback(course, "markdown_in_the_reason")
    note = html[html.index(NOTE_MARK):].split("\n")[0]
    assert "javascript:alert(1)" in note and "<a " not in note and "<img" not in note


def test_read_timestamp(tmp_path):
    """timestamp.txt read as hostile bytes: a valid time as nbgrader parses it; no file or
    an empty one is no time and no reason (as nbgrader); anything else, a reason."""
    from coursekit.nbgrader_timestamp import MAX_BYTES, read_timestamp

    def reading(content: bytes | None = None, make=None):
        folder = tmp_path / f"f{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        if content is not None:
            (folder / "timestamp.txt").write_bytes(content)
        if make:
            make(folder / "timestamp.txt")
        return read_timestamp(str(folder))

    assert reading(SOLUTION_TIME.encode()) == (datetime.datetime(2024, 5, 1, 12), None)
    assert reading() == (None, None) and reading(b" \n") == (None, None)
    assert reading(b"\xff\xfe 2024") == (None, "is not a time")
    assert reading(b"9999-12-31 23:59:59 -1200") == (None, "is not a time")  # overflows
    too_large = (None, f"is larger than {MAX_BYTES} bytes")
    assert reading(b" " * (MAX_BYTES + 1) + b"2024-05-01") == too_large
    assert reading(make=os.mkfifo) == (None, "is not a regular file")  # never blocks
    assert reading(make=os.mkdir) == (None, "is not a regular file")
    target = tmp_path / "elsewhere.txt"
    target.write_text(SOLUTION_TIME)
    assert reading(make=lambda p: os.symlink(target, p)) == (None, "is a link")


def test_ignored_paths_are_what_nbgrader_skips(tmp_path):
    """The exporter, made as nbgrader makes it (a child of the Autograde converter, after
    the folders are found), leaves nbgrader's own file walk only the regular files of each
    folder, whatever the links are named (glob characters, dot files, in subfolders), skips
    every file of a linked folder, and answers timestamps without reading a bad one."""
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import find_all_files

    from coursekit.nbgrader_folder import FolderCheckedExporter

    root = tmp_path / "course"
    secret = root / "source" / A / "secret.txt"
    secret.parent.mkdir(parents=True)
    secret.write_text("Model answer")
    (secret.parent / f"{A}.ipynb").write_text("Model answer")
    good = root / "submitted" / "good" / A
    odd = root / "submitted" / "odd" / A
    for folder in (good, odd):
        (folder / "sub").mkdir(parents=True)
        (folder / f"{A}.ipynb").write_text("{}")
        (folder / "keep.txt").write_text("mine")
        (folder / "sub" / ".keep").write_text("mine")
    (good / "timestamp.txt").write_text(SOLUTION_TIME)
    (odd / "timestamp.txt").write_text("garbage")
    for name in ("a[1].txt", "*", ".hidden", "sub/?.txt", "sub/.x[!]"):
        os.symlink(secret, odd / name)
    os.mkfifo(odd / "sub" / "pipe")
    linked = root / "submitted" / "linked" / A
    linked.parent.mkdir()
    os.symlink(secret.parent, linked)

    coursedir = CourseDirectory(root=str(root), assignment_id=A)
    converter = Autograde(coursedir=coursedir)
    converter.init_notebooks()
    exporter = FolderCheckedExporter(parent=converter)

    def copied(folder: Path) -> set[str]:
        found = find_all_files(str(folder), coursedir.ignore + ["*.ipynb"])
        return {os.path.relpath(f, folder) for f in found}

    assert copied(good) == {"keep.txt", "sub/.keep", "timestamp.txt"}
    assert copied(odd) == {"keep.txt", "sub/.keep"}
    assert copied(linked) == set()
    assert coursedir.get_existing_timestamp(str(good)) == datetime.datetime(2024, 5, 1, 12)
    assert coursedir.get_existing_timestamp(str(odd)) is None
    lines = exporter._folders[str(odd)].lines()
    assert lines[0].startswith("6 files of your folder were not copied")
    assert "timestamp.txt is not a time" in lines[1]
    assert exporter._folders[str(linked)].linked and not exporter._folders[str(good)].lines()
    # a second run (the formgrader keeps its CourseDirectory) starts from the TA's list again
    FolderCheckedExporter(parent=converter)
    assert len(coursedir.ignore) == len(CourseDirectory().ignore) + 6 + 1 + 2
