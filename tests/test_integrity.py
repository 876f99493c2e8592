"""The engine's own front door (`Grader.grade_path`, in-process): every attack of the shared
corpus (tests/attacks) yields exactly the score of the same code without the attack,
nothing hidden leaks into what a student sees, bad input gets a clear message, and the
grader never crashes."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import nbformat
import pytest

from tests.helpers import (A, COURSE, FULL, POINTS, REF_FORWARD, REF_RETRIEVE, RELEASE, Spec, TOTAL,
                           WRONG_LOOKUP, WRONG_LOOKUP_FAILS, make_notebook, ref, score_dict)
from coursekit import sandbox
from coursekit.engine import Grader
from tests.attacks import ATTACKS, SECRETS, PickleMarker, cell

FAST_LIMITS = sandbox.Limits(total_s=120, cell_s=4, call_s=4, long_call_s=60, memory_mb=1500)


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
    body = f"CK_SECRET_PATH = {str(secret_dir / 'secret.txt')!r}\n" + cell("read_closed_file")
    probe = Spec(body, REF_RETRIEVE, REF_FORWARD)
    # the probe works: where the file is readable (this process owns it), it says so
    import textwrap

    ns: dict = {}
    exec("import torch\nimport torch.nn.functional as F\ndef lookup(Q, K, soft=True):\n"  # noqa: S102
         + textwrap.indent(body, "    "), ns)
    with pytest.raises(RuntimeError, match="read it"):
        ns["lookup"](ns["torch"].zeros(1, 2), ns["torch"].zeros(1, 2))
    path = tmp_path / "probe.ipynb"
    nbformat.write(make_notebook(RELEASE, probe), path)
    assert grader.grade_path(path).scores["lookup"] == POINTS["lookup"]


def test_otter_log_pickle_is_never_loaded(grader, tmp_path):
    marker = tmp_path / "PWNED"
    sub = tmp_path / "submission.zip"
    nb = make_notebook(RELEASE, ref())
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr(f"{A.name}.ipynb", nbformat.writes(nb))
        zf.writestr(".OTTER_LOG", pickle.dumps(PickleMarker(str(marker))))
        zf.writestr("other.pkl", pickle.dumps(PickleMarker(str(marker))))
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
