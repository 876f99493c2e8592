"""Grading through `otter run` with the built zip (what Gradescope runs) and `coursekit grade`."""

from __future__ import annotations

import csv
import json

import course_config as cfg
from coursekit.grade import grade_all
from tests.conftest import otter_run, question_scores

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
    for secret in ("_SEED", "torch.randn(", "heldout", "def lookup_shapes"):
        assert secret not in visible


def test_coursekit_grade_writes_csv_and_feedback(built, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "alice.ipynb").write_bytes(built["solutions"].read_bytes())
    (subs / "bob.ipynb").write_bytes(built["release"].read_bytes())
    (subs / "carol.ipynb").write_text("this is not a notebook")
    out = tmp_path / "out"
    grade_all([subs], out, built["zip"])
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert list(rows) == ["alice", "bob", "carol"]
    assert rows["alice"]["total"] == f"{sum(FULL.values()):g}" and rows["alice"]["status"] == "ok"
    assert rows["bob"]["total"] == "0" and rows["bob"]["status"] == "ok"
    assert rows["carol"]["total"] == "0" and rows["carol"]["status"] == "error"
    assert (out / "feedback" / "alice" / "results.json").is_file()
