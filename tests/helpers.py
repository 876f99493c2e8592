"""What several test files share: the lab's release, its questions and points, the scores a
submission should get, the reference submission, and running `coursekit grade`.

Scores are never pinned here: they follow from the lab's content, i.e. the points in
the lab's lab.toml and its hidden cases (Lab.cases) (each question's points are
split evenly over its cases, as the engine and otter split them). A test says which
cases a submission fails (`scores(failed)`); a TA who changes the points changes no test.
"""

from __future__ import annotations

import ast
import csv
import importlib
import json
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import nbformat

from coursekit import course

COURSE = course.load()
A = COURSE.assignment()  # the lab the package's tests know: its release, questions, points, cases
LAB = A.lab()  # imports the lab's package (attention_basics), for the tests of its modules
# What the release's set-up cell writes beside a notebook: coursekit.lab_notebook imports it.
sys.modules.setdefault("lab_checks", importlib.import_module(f"{LAB.package}.public_checks"))



def variant(master: Path | None = None, points: dict | None = None, manual_points: dict | None = None,
            **lab_changes) -> tuple[course.Assignment, course.Course]:
    """The lab as a TA's edit would make it, for one test: another master notebook, other
    points, other fields of its `Lab` (e.g. `cases`); and the course that holds it."""
    lab = dataclasses.replace(LAB, **lab_changes) if lab_changes else LAB
    a = dataclasses.replace(A, master_file=master or A.master_file,
                            points=dict(A.points if points is None else points),
                            manual_points=dict(A.manual_points if manual_points is None else manual_points),
                            _lab=[lab])
    return a, dataclasses.replace(COURSE, assignments={**COURSE.assignments, A.name: a})


def set_key(path: Path, key: str, value: str) -> None:
    """A TA's edit of a TOML or Python settings file: the first line `key = ...` becomes
    `key = value`, whatever its value was (the test fails if there is no such line)."""
    import re

    text, n = re.subn(rf"(?m)^{re.escape(key)}\s*=.*$", lambda _: f"{key} = {value}", path.read_text(), count=1)
    assert n == 1, f"no line `{key} = ...` in {path}"
    path.write_text(text)


def edit(path: Path, old: str, new: str) -> None:
    """A TA's edit of one file: the first `old` becomes `new` (the test fails if `old` is gone)."""
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


# The lab's corpus of student submissions and what each must get live with the lab, in its
# folder's tests/ (corpus.py, expected.py): the engine's tests take them from here.
_corpus = importlib.import_module(f"{LAB.package}.tests.corpus")
_expected = importlib.import_module(f"{LAB.package}.tests.expected")
Spec, make_notebook, write_corpus = _corpus.Spec, _corpus.make_notebook, _corpus.write_corpus
DEFINES, CORRECT, WRONG, SUBMISSIONS = _corpus.DEFINES, _corpus.CORRECT, _corpus.WRONG, _corpus.SUBMISSIONS
public_lines = _corpus.public_lines
REF_LOOKUP, REF_RETRIEVE, REF_FORWARD = _corpus.REF_LOOKUP, _corpus.REF_RETRIEVE, _corpus.REF_FORWARD
FAILS, MESSAGES, FIRST_LINES = _expected.FAILS, _expected.MESSAGES, _expected.FIRST_LINES

REPO = COURSE.root
RELEASE = A.release_dir / f"{A.name}.ipynb"

# --- the lab's questions, cases and points ------------------------------------------------

POINTS: dict[str, float] = dict(A.points)
QUESTIONS: list[str] = list(POINTS)  # the course's order: score tuples follow it
CASES_OF: dict[str, tuple[str, ...]] = {
    q: tuple(cid for cid, case in LAB.cases.items() if case.question == q) for q in QUESTIONS}


def cases(*questions: str) -> set[str]:
    """Every hidden case of `questions` (a submission that loses those questions whole)."""
    unknown = set(questions) - set(QUESTIONS)
    assert not unknown, f"no autograded question {sorted(unknown)} in the lab's lab.toml"
    return _expected.cases(*questions)  # the lab's own reading of its case table


# The questions the lab's corpus answers: those whose public check needs a name
# its entries define. Any other (a question a TA added) keeps its stub in every corpus entry
# and fails all its cases there; the built solutions answer it.
ANSWERED: list[str] = [q for q, name in LAB.public_questions().items() if name in DEFINES and q in POINTS]
UNANSWERED: list[str] = [q for q in QUESTIONS if q not in ANSWERED]


def all_but(failed: Iterable[str] = ()) -> tuple[float, ...]:
    """The per-question scores (in the course's order) of a submission that fails the
    hidden cases `failed` and passes every other one, under the configured points."""
    failed = set(failed)
    unknown = failed - set(LAB.cases)
    assert not unknown, f"no hidden case {sorted(unknown)} in coursekit.LAB.cases"
    return tuple(round(POINTS[q] * sum(c not in failed for c in CASES_OF[q]) / len(CASES_OF[q]), 6)
                 for q in QUESTIONS)


def scores(failed: Iterable[str] = ()) -> tuple[float, ...]:
    """The scores of a corpus entry that fails the hidden cases `failed`: every case of the
    questions the corpus does not answer fails too (UNANSWERED)."""
    return all_but(set(failed) | cases(*UNANSWERED))


def score_dict(failed: Iterable[str] = ()) -> dict[str, float]:
    """`scores(failed)` keyed by question."""
    return dict(zip(QUESTIONS, scores(failed)))


# corpus entry -> its scores, one per autograded question in the course's order
EXPECTED: dict[str, tuple[float, ...]] = {name: scores(failed) for name, failed in FAILS.items()}
FULL = scores()  # the corpus's reference (every question the corpus answers)
SOLVED = all_but()  # the built solutions: every point
SOLVED_DICT = dict(zip(QUESTIONS, SOLVED))
ZERO = all_but(cases(*QUESTIONS))
TOTAL = sum(FULL)
# a kept-out probe: lookup raises, the rest is the reference
NOT_LEAKED = scores(cases("lookup"))
# lookup without its softmax (WRONG_LOOKUP): the soft cases fail, the hard ones pass
WRONG_LOOKUP = "return Q.float() @ K.float().transpose(-2, -1)"
WRONG_LOOKUP_FAILS = {"lookup_soft_softmax", "lookup_soft_rows"}


# lookup is right only when a probe cell leaked (set LEAKED): a kept-out probe scores lookup 0
GATED_LOOKUP = "if not LEAKED:\n    raise NotImplementedError()\n" + REF_LOOKUP.strip("\n")


def probe_cell(program: str) -> str:
    """A cell that runs a probe program (it defines `probe()`, True on a leak) into LEAKED."""
    return (program.rstrip("\n") + "\n\n\n"
            "try:\n    LEAKED = bool(probe())\nexcept BaseException:\n    LEAKED = False\n")


def probe_spec(program: str) -> Spec:
    """The reference, but with GATED_LOOKUP after the probe program's cell."""
    return Spec(GATED_LOOKUP, REF_RETRIEVE, REF_FORWARD, after={"lookup": probe_cell(program)})


def stub_count() -> int:
    """How many stubs a release has: one per solution block (`# BEGIN SOLUTION`) in the
    code cells of the master notebook."""
    nb = nbformat.read(A.master, as_version=4)
    return sum(c.source.count("# BEGIN SOLUTION") for c in nb.cells if c.cell_type == "code")


def solution_lines() -> list[str]:
    """Code lines inside the master notebook's solution blocks."""
    lines, inside = [], False
    for cell in nbformat.read(A.master, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            if "# BEGIN SOLUTION" in line:
                inside = True
            elif "# END SOLUTION" in line:
                inside = False
            elif inside and line.strip() and not line.strip().startswith("#"):
                lines.append(line.strip())
    return lines


def ref(**extra) -> Spec:
    """The reference solution's three bodies (plus `above`/`after` cells)."""
    return Spec(REF_LOOKUP, REF_RETRIEVE, REF_FORWARD, **extra)


def write_nb(folder: Path, name: str, spec: Spec, release: Path = RELEASE) -> Path:
    """`spec` made from the release, written as FOLDER/NAME.ipynb."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(make_notebook(release, spec), path)
    return path


# --- running `coursekit grade` ----------------------------------------------------------------

GRADE_TIMEOUT_S = 180  # a batch that hangs (a FIFO in a job folder, say) fails, never blocks
SPAWNED: set[int] = set()  # our own subprocesses (test_isolation's orphan reaper never touches them)


def new_token() -> str:
    """A fresh random word that marks one test's files, processes and submissions."""
    return uuid.uuid4().hex[:12]


@dataclass
class Run:
    """One command: exit code, output, and for grade runs the rows of grades.csv."""

    rc: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    out: Path | None = None
    rows: dict[str, dict] = field(default_factory=dict)

    def why(self) -> str:
        state = "TIMED OUT" if self.timed_out else f"exit {self.rc}"
        return f"[{state} after {self.seconds:.0f} s] {(self.stdout + self.stderr)[-1500:]}"

    def scores(self, student: str) -> tuple[float, ...]:
        assert student in self.rows, f"no row for {student!r} in grades.csv {self.why()}"
        return tuple(float(self.rows[student][q]) for q in QUESTIONS)


def run_cmd(cmd: list[str], *, cwd: Path = REPO, env: dict | None = None,
            timeout: float = GRADE_TIMEOUT_S) -> Run:
    """Run `cmd` in its own session; on timeout kill that whole session (it hung)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    SPAWNED.add(proc.pid)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        out, err = proc.communicate()
    return Run(proc.returncode, out or "", err or "", timed_out, time.monotonic() - start)


def grade(subs: Path | list[Path], out: Path, *, jobs: int = 2, env_extra: dict | None = None,
          args: tuple[str, ...] = (), prefix: tuple[str, ...] = (),
          timeout: float = GRADE_TIMEOUT_S) -> Run:
    """`coursekit grade SUBS... --out OUT --jobs N` (what a TA types), rows from grades.csv.
    Folders are graded in the order given (each one's notebooks in name order)."""
    env = {**os.environ, **(env_extra or {})}
    folders = [str(p) for p in (subs if isinstance(subs, list) else [subs])]
    cmd = [*prefix, sys.executable, "-m", "coursekit", "grade", *folders, "--out", str(out),
           "--jobs", str(jobs), "--quiet", *args]
    run = run_cmd(cmd, env=env, timeout=timeout)
    run.out = out
    run.rows = read_rows(out)
    return run


def read_rows(out: Path) -> dict[str, dict]:
    """The rows of OUT/grades.csv by student ({} when there is none)."""
    path = out / "grades.csv"
    if not path.is_file():
        return {}
    with path.open() as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def files_in_setup_cell(source: str) -> dict[str, str]:
    """The files a release's set-up cell writes: its dict literal, parsed safely."""
    literal = source.split("_lab_files = ", 1)[1].split("\n}\n", 1)[0] + "\n}"
    files = ast.literal_eval(literal)
    if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in files.items())):
        raise ValueError("the set-up cell's files are not a dict of texts")
    return files


# --- the other front doors: `otter run` (Gradescope) and nbgrader ---------------------------

def otter_run(zip_path: Path, notebook: Path, out_dir: Path) -> dict:
    """Grade one notebook with `otter run` (what Gradescope runs) and return results.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "otter", "run", "-a", str(zip_path), "-o", str(out_dir),
         "--no-logo", str(notebook)],
        capture_output=True, text=True, cwd=out_dir, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads((out_dir / "results.json").read_text())


def otter_runs(zip_path: Path, notebooks: dict[str, Path | tuple[Path, Path]], out_root: Path,
               jobs: int = 2) -> dict[str, dict | str]:
    """`otter_run` of each notebook (or (zip, notebook) pair), `jobs` at a time: each is its
    own otter process, so the runs are independent, and the second core halves the wall
    time. Returns each key's results.json, or the text of the failure of a run that failed."""
    from concurrent.futures import ThreadPoolExecutor

    def one(item: tuple[str, Path | tuple[Path, Path]]) -> dict | str:
        key, what = item
        autograder, notebook = what if isinstance(what, tuple) else (zip_path, what)
        try:
            return otter_run(autograder, notebook, out_root / key.replace(":", "-"))
        except Exception as exc:  # noqa: BLE001 - the test that asks for it fails with this
            return f"otter run of {notebook} failed: {exc}"

    with ThreadPoolExecutor(jobs) as pool:
        return dict(zip(notebooks, pool.map(one, notebooks.items())))


def question_scores(results: dict) -> dict[str, float]:
    """Per-question scores of a results.json, for the autograded questions only."""
    got = {t["name"]: t["score"] for t in results["tests"] if t["name"] in A.points}
    return {q: got.get(q) for q in A.points}  # in the course's question order


def nbgrader_hidden() -> tuple[str, ...]:
    """Text of nbgrader's hidden tests and the checks behind them, which no student file may
    contain. (coursekit.build is imported here, not above: it needs otter, which the Colab
    root that also imports this module has not got.)"""
    from coursekit.build.notebooks import HIDDEN_MARKERS

    return HIDDEN_MARKERS + ("BEGIN HIDDEN TESTS", "nbgrader_plugin", "check('", "coursekit",
                             "_SEED", "def probes", "heldout")


def nbgrader(course: Path, *args: str) -> str:
    """Run one standard nbgrader command in the course folder; fail with its output."""
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout + proc.stderr


def nbgrader_scores(course: Path, *, strict: bool = True) -> dict[str, tuple[float, ...]]:
    """Per-question autograded scores (in the course's order) of each student in nbgrader's
    gradebook (one grade per hidden case). Strict: every student was graded and every case
    has a score; otherwise a student without a graded notebook is left out and a case
    without a score counts 0 (an attack may end a run early: tests/test_isolation.py)."""
    from nbgrader.api import Gradebook, MissingEntry

    table = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in gb.students:
            try:
                sub = gb.find_submission_notebook(A.name, A.name, student.id)
            except MissingEntry:
                assert not strict, f"{student.id} was not graded"
                continue
            per = dict.fromkeys(QUESTIONS, 0.0)
            for grade_ in sub.grades:
                if grade_.name in LAB.cases:
                    assert grade_.score is not None or not strict, f"{student.id}: {grade_.name} has no score"
                    per[LAB.cases[grade_.name].question] += grade_.score or 0.0
            table[student.id] = tuple(round(v, 6) for v in per.values())
    return table
