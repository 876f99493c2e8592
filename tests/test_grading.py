"""Grading through `otter run` with the built zip (what Gradescope runs): full marks for
the solutions, zero for the release, the same scores as `coursekit grade`, and the
attacks and bad input of tests/test_integrity.py handled there too."""

from __future__ import annotations

import json
import pickle
import zipfile

import nbformat
import pytest

import course_config as cfg
from coursekit.grade import grade_all
from tests.conftest import otter_run, question_scores
from tests.corpus import SUBMISSIONS, make_notebook, write_corpus
from tests.test_integrity import ATTACKS, RELEASE, SECRETS, _Marker, ref

pytestmark = pytest.mark.slow  # end to end; `make test-fast` skips it

FULL = {q: float(p) for q, p in cfg.AUTOGRADED_POINTS.items()}


def test_solutions_earn_full_marks_with_otter_run(built, tmp_path):
    results = otter_run(built["zip"], built["solutions"], tmp_path)
    assert question_scores(results) == FULL


def test_release_scores_zero_and_results_are_written(built, tmp_path):
    results = otter_run(built["zip"], built["release"], tmp_path)
    assert (tmp_path / "results.json").is_file()
    assert question_scores(results) == {q: 0.0 for q in FULL}
    visible = json.dumps(results)
    assert "not implemented yet" in visible  # the student learns why
    for secret in SECRETS:
        assert secret not in visible


AGREE = ["c03_mm_bmm_switch", "w02_softmax_in_hard_mode", "w10_average_attn_weights_false",
         "w13_returns_query_image"]


def test_otter_run_agrees_with_coursekit_grade(built, tmp_path):
    paths = write_corpus(RELEASE, tmp_path / "subs", AGREE)
    rows = dict(grade_all([tmp_path / "subs"], tmp_path / "out", jobs=2, progress=False))
    for path in paths:
        assert question_scores(otter_run(built["zip"], path, tmp_path / path.stem)) == rows[path.stem].scores


@pytest.mark.parametrize("name", ["patch_comparisons_with_stubs", "patch_otter_with_stubs",
                                  "read_files_and_print", "leak_through_exception",
                                  "os_exit_in_a_cell", "kill_parent"])
def test_attack_through_otter_run(built, name, tmp_path):
    spec, expected = ATTACKS[name]
    path = tmp_path / f"{cfg.ASSIGNMENT}.ipynb"
    nbformat.write(make_notebook(RELEASE, spec), path)
    results = otter_run(built["zip"], path, tmp_path / "out")
    assert tuple(question_scores(results).values()) == expected
    visible = json.dumps(results)
    for secret in SECRETS + ("LEAK",):
        assert secret not in visible


def test_otter_log_pickle_through_otter_run(built, tmp_path):
    marker = tmp_path / "PWNED"
    sub = tmp_path / "submission.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr(f"{cfg.ASSIGNMENT}.ipynb", nbformat.writes(make_notebook(RELEASE, ref())))
        zf.writestr(".OTTER_LOG", pickle.dumps(_Marker(str(marker))))
    results = otter_run(built["zip"], sub, tmp_path / "out")
    assert question_scores(results) == FULL
    assert not marker.exists()


def test_renamed_notebook_through_otter_run(built, tmp_path):
    path = tmp_path / f"{cfg.ASSIGNMENT} (1).ipynb"
    nbformat.write(make_notebook(RELEASE, SUBMISSIONS["w01_softmax_wrong_dim"]), path)
    assert question_scores(otter_run(built["zip"], path, tmp_path / "out")) == {
        "lookup": 3.0, "retrieve": 2.0, "forward": 3.0, "training": 2.0}
