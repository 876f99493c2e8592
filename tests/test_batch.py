"""Batch grading: CSV and feedback, Gradescope export layout, resuming after kill -9."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import course_config as cfg
from coursekit.grade import find_submissions, grade_all
from tests.corpus import write_corpus

RELEASE = cfg.RELEASE_DIR / f"{cfg.ASSIGNMENT}.ipynb"
NAMES = ["c01_at_operator", "c04_einsum", "w01_softmax_wrong_dim", "w06_retrieve_mean",
         "w11_weights_detached", "w14_only_lookup_done", "w15_stubs_left_in", "c07_cast_at_the_end"]


@pytest.fixture(scope="module")
def subs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("subs")
    write_corpus(RELEASE, folder, NAMES)
    (folder / "broken.ipynb").write_text("{ not json")
    return folder


@pytest.fixture(scope="module")
def reference_run(subs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    grade_all([subs], out, jobs=2, progress=False)
    return out


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def test_csv_rows_feedback_and_charts(reference_run):
    rows = _csv(reference_run / "grades.csv")
    assert [r["student"] for r in rows] == sorted(NAMES + ["broken"])
    assert list(rows[0]) == ["student", "lookup", "retrieve", "forward", "training", "total", "status",
                            "isolation", "device", "message"]
    by = {r["student"]: r for r in rows}
    assert (by["c01_at_operator"]["total"], by["c01_at_operator"]["status"]) == ("12", "ok")
    assert (by["c01_at_operator"]["device"], by["broken"]["device"]) == ("cpu", "")  # auto: no GPU here
    assert (by["w11_weights_detached"]["forward"], by["w11_weights_detached"]["training"]) == ("3", "0")
    assert by["broken"]["status"] == "bad input" and "invalid JSON" in by["broken"]["message"]
    results = json.loads((reference_run / "feedback" / "w01_softmax_wrong_dim" / "results.json").read_text())
    assert {t["name"]: t["score"] for t in results["tests"] if "score" in t} == {
        "lookup": 3.0, "retrieve": 2.0, "forward": 3.0, "training": 2.0}
    report = (reference_run / "feedback" / "w01_softmax_wrong_dim" / "report.md").read_text()
    assert "**Score: 10 / 12**" in report and "softmax over the queries, not the keys" in report
    assert not any(reference_run.glob("grades.csv.*"))


def test_summary_and_charts(reference_run, capsys):
    from coursekit.grade import summarise
    from coursekit.report import decode

    rows = [(p.stem, decode(p.read_text())) for p in sorted((reference_run / ".reports").glob("*.json"))]
    text = summarise(rows, reference_run)
    assert f"{len(NAMES) + 1} submissions" in text and "lookup" in text and "status: bad input 1, ok 8" in text
    trained = sum(r.device == "cpu" for _, r in rows)  # auto: the CPU here
    assert trained >= 5 and all(r.device in ("cpu", "") for _, r in rows)
    assert f"training check on: cpu {trained}, not trained {len(rows) - trained}" in text
    for chart in ("score_histogram.png", "question_pass_rates.png"):
        assert (reference_run / chart).read_bytes()[:4] == b"\x89PNG"


def test_resume_after_kill_9(subs, reference_run, tmp_path):
    """Kill the grader in the middle; the rerun grades only the rest and gives the same CSV."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "coursekit", "grade", str(subs), "--out", str(out), "--jobs", "2", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=cfg.REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / ".reports").glob("*.json"))) < 3:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in (out / ".reports").glob("*.json")}
    assert 3 <= len(done_before) < len(NAMES) + 1
    assert not (out / "grades.csv").exists()  # written only at the end, never half
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / ".reports").glob("*.json")}
    subprocess.run(cmd, cwd=cfg.REPO_ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert (out / "grades.csv").read_text() == (reference_run / "grades.csv").read_text()
    for name, stamp in stamps.items():  # finished submissions were not graded again
        assert (out / ".reports" / name).stat().st_mtime_ns == stamp


def test_gradescope_export_layout(tmp_path):
    export = tmp_path / "export"
    for sub, name in (("submission_101", "c01_at_operator"), ("submission_102", "w15_stubs_left_in")):
        (export / sub).mkdir(parents=True)
        write_corpus(RELEASE, export / sub, [name])
        (export / sub / f"{name}.ipynb").rename(export / sub / f"{cfg.ASSIGNMENT}.ipynb")
    (export / "submission_metadata.yml").write_text(
        "submission_101:\n  :submitters:\n  - :name: Ada L\n    :sid: '1001'\n    :email: ada@example.edu\n"
        "submission_102:\n  :submitters:\n  - :name: Bo K\n    :email: bo@example.edu\n")
    found = find_submissions([export])
    assert [(sid, p.parent.name) for sid, p in found] == [("1001", "submission_101"),
                                                         ("bo@example.edu", "submission_102")]


def test_grade_reports_missing_mnist_root(tmp_path, monkeypatch, capsys):
    from coursekit.cli import main

    monkeypatch.setattr(cfg, "REPO_ROOT", tmp_path)  # no cached slice
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "no_mnist"))
    (tmp_path / "a.ipynb").write_text("{}")
    assert main(["grade", str(tmp_path / "a.ipynb"), "--out", str(tmp_path / "out")]) == 1
    assert f"coursekit grade: MNIST data root {tmp_path / 'no_mnist'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_score_histogram_bins_half_points(tmp_path):
    """11.5 is counted at 11.5, not in the 12 bar; the count axis has whole numbers only."""
    from coursekit.grade import plot_score_histogram, score_bins

    totals = [12, 12, 11.5, 11.5, 11.5, 11, 7, 0, 0.4]
    centres, counts = score_bins(totals, 12)
    assert centres == [i / 2 for i in range(25)]
    got = dict(zip(centres, counts))
    assert got[12] == 2 and got[11.5] == 3 and got[11] == 1 and got[7] == 1 and got[0.5] == 1 and got[0] == 1
    assert sum(counts) == len(totals)
    drawn = plot_score_histogram(totals, 12, tmp_path / "score_histogram.png")
    assert (tmp_path / "score_histogram.png").read_bytes()[:4] == b"\x89PNG"
    heights = dict(zip(drawn["centres"], drawn["heights"]))
    assert heights[12] == 2 and heights[11.5] == 3 and heights[11] == 1
    assert drawn["count_ticks"] and all(float(t).is_integer() for t in drawn["count_ticks"])
