"""Attacks and bad input: each yields exactly the score of the same code without the
attack, nothing hidden leaks into what a student sees, and the grader never crashes."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import nbformat
import pytest

from tests.helpers import A, COURSE
from coursekit import sandbox
from coursekit.engine import Grader
from tests.corpus import REF_FORWARD, REF_LOOKUP, REF_RETRIEVE, Spec, make_notebook
from tests.helpers import (FULL, POINTS, RELEASE, TOTAL, WRONG_LOOKUP, WRONG_LOOKUP_FAILS, ZERO, cases, ref,
                           score_dict, scores)

# Text that must never appear in anything a student sees.
SECRETS = ("_SEED", "def probes", "run_case(", "attention_checks", "torch.randn(",
           "BUNDLE_SEED", "heldout", "import numpy as np\nimport torch")


# The attack cells, as files (tests/attacks/integrity/): each opens with what it tries.
CELLS = Path(__file__).parent / "attacks" / "integrity"


def cell(name: str) -> str:
    """The source of the attack cell (or function body) tests/attacks/integrity/<name>.py."""
    return (CELLS / f"{name}.py").read_text()


PATCH_COMPARISONS, PATCH_OTTER = cell("patch_comparisons"), cell("patch_otter")
READ_FILES, LEAKY_LOOKUP = cell("read_files"), cell("leaky_lookup")
EXIT_CELL, SYS_EXIT, KILL_PARENT, KILL_ALL = cell("exit_cell"), cell("sys_exit"), cell("kill_parent"), cell("kill_all")
LOOP, IGNORE_SIGNALS, MEMORY_CELL = cell("loop"), cell("ignore_signals"), cell("exhaust_memory")
NO_GPU, USER_NAME, NO_UID_LOCK = cell("no_gpu"), cell("user_name"), cell("no_uid_lock")

ATTACKS: dict[str, tuple[Spec, tuple[float, ...]]] = {
    "patch_comparisons_with_stubs": (Spec(after={"lookup": PATCH_COMPARISONS}), ZERO),
    "patch_comparisons_wrong_lookup": (Spec(WRONG_LOOKUP, REF_RETRIEVE, REF_FORWARD,
                                            after={"lookup": PATCH_COMPARISONS}), scores(WRONG_LOOKUP_FAILS)),
    "patch_otter_with_stubs": (Spec(after={"lookup": PATCH_OTTER}), ZERO),
    "read_files_and_print": (ref(above={"lookup": READ_FILES}), FULL),
    "leak_through_exception": (Spec(LEAKY_LOOKUP, REF_RETRIEVE, REF_FORWARD,
                                    above={"lookup": READ_FILES}), scores(cases("lookup"))),
    "os_exit_in_a_cell": (ref(after={"lookup": EXIT_CELL}), FULL),
    "kill_parent": (ref(after={"retrieve": KILL_PARENT}), FULL),
    "kill_every_process": (ref(after={"retrieve": KILL_ALL}), FULL),
    "sys_exit_in_a_cell": (ref(after={"lookup": SYS_EXIT}), FULL),
    "infinite_loop_in_a_cell": (ref(after={"lookup": IGNORE_SIGNALS + LOOP}), FULL),
    "infinite_loop_in_lookup": (Spec(LOOP, REF_RETRIEVE, REF_FORWARD), scores(cases("lookup"))),
    "exhaust_memory_in_a_cell": (ref(after={"lookup": MEMORY_CELL}), FULL),
    "gpu_hidden_from_student_code": (ref(above={"lookup": NO_GPU}), FULL),
    "user_name_lookup": (ref(above={"lookup": USER_NAME}), FULL),
    "uid_lock_not_inherited": (ref(above={"lookup": NO_UID_LOCK}), FULL),
    "os_exit_in_forward": (Spec(REF_LOOKUP, REF_RETRIEVE, "import os\nos._exit(0)"),
                           scores(cases("forward", "training"))),
}
FAST_LIMITS = sandbox.Limits(total_s=120, cell_s=4, call_s=4, training_s=60, memory_mb=1500)


@pytest.fixture(scope="module")
def grader() -> Grader:
    g = COURSE.grader(A)
    g.limits = FAST_LIMITS
    return g


def _visible(report) -> str:
    return json.dumps({"message": report.message, "cases": [c.message for c in report.cases]})


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_gets_the_score_of_its_code(name, grader, tmp_path):
    spec, expected = ATTACKS[name]
    path = tmp_path / f"{A.name}.ipynb"
    nbformat.write(make_notebook(RELEASE, spec), path)
    report = grader.grade_path(path)
    assert tuple(report.scores.values()) == expected, (report.status, report.feedback())
    visible = _visible(report)
    for secret in SECRETS + ("LEAK",):
        assert secret not in visible
    assert report.status == "ok"


def test_stopped_code_is_reported(grader, tmp_path):
    path = tmp_path / "loop.ipynb"
    nbformat.write(make_notebook(RELEASE, ATTACKS["infinite_loop_in_lookup"][0]), path)
    report = grader.grade_path(path)
    assert "some code was stopped: timed out" in report.message
    assert report.feedback()["lookup"] == ["lookup: timed out"]  # every lookup call, said once


def test_concurrent_sandboxes_never_share_a_uid():
    """The supervisor kills every process of its uid: two graders on one machine (same
    slot, say nbgrader and `coursekit grade`) must each get their own."""
    from coursekit.sandbox import uids

    if os.geteuid() != 0:
        pytest.skip("not root: no sandbox uids")
    first, second = uids.claim(0), uids.claim(0)
    assert first.uid is not None and second.uid is not None and first.uid != second.uid
    first.release()
    again = uids.claim(0)
    assert again.uid == first.uid  # released when its sandbox closes
    again.release()
    second.release()


def test_two_graders_at_once_both_grade_in_full(tmp_path):
    """Found when two test runs shared the machine: one grader killed the other's child."""
    import subprocess
    import sys

    path = tmp_path / f"{A.name}.ipynb"
    nbformat.write(make_notebook(RELEASE, ref()), path)
    code = ("import sys; from coursekit import course; "
            "r = course.load().grader().grade_path(__import__('pathlib').Path(sys.argv[1])); "
            "print(sum(r.scores.values()))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                              text=True, cwd=COURSE.root) for _ in range(2)]
    totals = [float(p.communicate(timeout=300)[0].split()[-1]) for p in procs]
    assert totals == [TOTAL] * 2


def test_sandbox_cannot_read_grader_files(grader, tmp_path):
    """Student code cannot read a grader's file that is closed to others."""
    secret_dir = tmp_path / "closed"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "secret.txt").write_text("TOPSECRET")
    probe = Spec(f"""
        try:
            text = open({str(secret_dir / 'secret.txt')!r}).read()
        except Exception:
            text = ""
        if "TOPSECRET" in text:
            raise RuntimeError("read it")
        scores = Q.float() @ K.float().transpose(-2, -1)
        return F.softmax(scores, dim=-1) if soft else scores
        """, REF_RETRIEVE, REF_FORWARD)
    path = tmp_path / "probe.ipynb"
    nbformat.write(make_notebook(RELEASE, probe), path)
    assert grader.grade_path(path).scores["lookup"] == POINTS["lookup"]


class _Marker:
    """A pickle that creates a file when loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_otter_log_pickle_is_never_loaded(grader, tmp_path):
    marker = tmp_path / "PWNED"
    sub = tmp_path / "submission.zip"
    nb = make_notebook(RELEASE, ref())
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr(f"{A.name}.ipynb", nbformat.writes(nb))
        zf.writestr(".OTTER_LOG", pickle.dumps(_Marker(str(marker))))
        zf.writestr("other.pkl", pickle.dumps(_Marker(str(marker))))
    report = grader.grade_path(sub)
    assert tuple(report.scores.values()) == FULL
    assert not marker.exists()


# --- bad input ---------------------------------------------------------------------

def _nb_text(**meta) -> str:
    nb = nbformat.read(RELEASE, as_version=4)
    nb.metadata.update(meta)
    return nbformat.writes(nb)


BAD_INPUT = {
    "readme.ipynb": (lambda: "# not a notebook\n", "readme.ipynb is not a notebook: invalid JSON"),
    "truncated.ipynb": (lambda: RELEASE.read_text()[:500], "truncated.ipynb is not a notebook: invalid JSON"),
    "empty.ipynb": (lambda: "", "empty.ipynb is empty"),
    "old_format.ipynb": (lambda: json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [], "cells": []}),
                         "old_format.ipynb uses notebook format 3"),
    "other_assignment.ipynb": (lambda: _nb_text(otter={"assignment_name": "transformers_lab"}),
                               "is a notebook of assignment 'transformers_lab', not 'attention_basics'"),
    "list.ipynb": (lambda: "[1, 2, 3]", "list.ipynb is not a Jupyter notebook (no cells)"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_message(name, grader, tmp_path):
    make, message = BAD_INPUT[name]
    path = tmp_path / name
    path.write_text(make())
    report = grader.grade_path(path)
    assert report.status == "bad input"
    assert message in report.message
    assert report.total == 0


def test_zip_without_notebook(grader, tmp_path):
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("notes.txt", "hello")
    report = grader.grade_path(path)
    assert report.status == "bad input"
    assert report.message == "upload.zip is a zip without a notebook (.ipynb) in it"


def test_renamed_notebook_scores_the_same(grader, tmp_path):
    nb = make_notebook(RELEASE, Spec(WRONG_LOOKUP, REF_RETRIEVE, REF_FORWARD))
    a, b = tmp_path / f"{A.name}.ipynb", tmp_path / f"{A.name} (1).ipynb"
    nbformat.write(nb, a)
    nbformat.write(nb, b)
    assert grader.grade_path(a).scores == grader.grade_path(b).scores == score_dict(WRONG_LOOKUP_FAILS)


def test_stub_cells_deleted(grader, tmp_path):
    nb = nbformat.read(RELEASE, as_version=4)
    nb.cells = [c for c in nb.cells if "NotImplementedError" not in c.source]
    path = tmp_path / "deleted.ipynb"
    nbformat.write(nb, path)
    report = grader.grade_path(path)
    assert report.status == "ok" and report.total == 0
    assert report.feedback()["lookup"] == ["lookup: not defined (run the cell that defines it)"]


def test_grader_leaves_the_environment_alone(monkeypatch):
    """Preloading sets matplotlib's Agg backend for the sandbox only: kernels the TA's
    process starts later (a notebook run, otter's) must still draw inline plots."""
    import os

    monkeypatch.delenv("MPLBACKEND", raising=False)
    COURSE.grader(A)
    assert "MPLBACKEND" not in os.environ
