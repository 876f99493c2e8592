"""When students see what the grader says (course_config.RESULTS_VISIBILITY).

Before grades are published a student sees only the results.json entries whose
visibility is `visible` (and the top-level `output`): no hidden verdict line may be
there, and the scores stay hidden. With the setting `visible` the verdicts show at once.
Both `coursekit grade`'s results.json and `otter run`'s (the autograder zip) obey it.
"""

from __future__ import annotations

import dataclasses

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from coursekit.grade import grade_all
from tests.helpers import (COURSE, FAILS, QUESTIONS, RELEASE, otter_runs, question_scores, score_dict,
                           write_corpus)

NAMES = ["w02_softmax_in_hard_mode", "w14_only_lookup_done", "w15_stubs_left_in"]
VISIBLE_AT_ONCE = {"public": "visible", "hidden": "visible"}


def shown_before_publishing(results: dict) -> str:
    """Everything a student sees before grades are published (nor after the due date)."""
    default = results.get("visibility", "visible")
    texts = [results.get("output", "")]
    for test in results["tests"]:
        if test.get("visibility", default) == "visible":
            texts += [test.get("name", ""), test.get("output", "")]
    return "\n".join(texts)


def hidden_lines(results: dict) -> list[str]:
    """The verdict lines of the per-question entries (what the hidden checks said)."""
    lines = []
    for test in results["tests"]:
        if test.get("name") in QUESTIONS:
            lines += [ln.strip() for ln in test.get("output", "").splitlines() if "❌" in ln]
    return lines


def assert_hidden_until_published(results: dict, messages: list[str]) -> None:
    shown = shown_before_publishing(results)
    assert messages, "the submission should have failed some hidden case"
    for message in messages:
        assert message not in shown, message
    assert "not implemented yet" not in shown and "❌" not in shown
    # scores: every question's entry is hidden until published, and so is the total
    default = results.get("visibility", "visible")
    for test in results["tests"]:
        if test.get("name") in QUESTIONS or "score" in test:
            assert test.get("visibility", default) == "after_published", test["name"]
    assert default == "after_published"
    assert "after grades are published" in shown  # the student learns the work was graded


def assert_visible_at_once(results: dict, messages: list[str]) -> None:
    shown = shown_before_publishing(results)
    for message in messages:
        assert message in shown, message
    default = results.get("visibility", "visible")
    assert default == "visible"
    for test in results["tests"]:
        assert test.get("visibility", default) == "visible", test["name"]


# --- coursekit grade -------------------------------------------------------------------

@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Path, dict]:
    subs = tmp_path_factory.mktemp("subs")
    write_corpus(RELEASE, subs, NAMES)
    out = tmp_path_factory.mktemp("out")
    rows = dict(grade_all([subs], out, jobs=2, progress=False))
    return subs, out, rows


def _messages(report) -> list[str]:
    return [c.message for c in report.cases if not c.passed]


@pytest.mark.parametrize("name", NAMES)
def test_coursekit_grade_hides_verdicts_until_published(graded, name):
    _, out, rows = graded
    results = json.loads((out / "feedback" / name / "results.json").read_text())
    assert_hidden_until_published(results, _messages(rows[name]))
    assert "isolation:" in shown_before_publishing(results)


def test_coursekit_grade_shows_verdicts_when_visible(graded, tmp_path, monkeypatch):
    subs, out, rows = graded
    visible = dataclasses.replace(COURSE, visibility=dict(VISIBLE_AT_ONCE))
    again = tmp_path / "out"
    shutil.copytree(out / ".reports", again / ".reports")  # nothing is graded again
    grade_all([subs], again, jobs=1, progress=False, course=visible)
    for name in NAMES:
        results = json.loads((again / "feedback" / name / "results.json").read_text())
        assert_visible_at_once(results, _messages(rows[name]))


def test_feedback_lists_each_line_once(graded):
    _, out, rows = graded
    for name in NAMES:
        report = (out / "feedback" / name / "report.md").read_text()
        results = json.loads((out / "feedback" / name / "results.json").read_text())
        for q, lines in rows[name].feedback().items():
            assert len(lines) == len(set(lines)), (name, q, lines)
        lines = hidden_lines(results)
        assert len(lines) == len(set(lines)), (name, lines)
        assert report.count("not implemented yet") <= len(QUESTIONS), report


def _zip_with_visibility(zip_path: Path, out: Path, setting: dict) -> Path:
    """A copy of the autograder zip whose course_config.py ends with another setting."""
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "course_config.py":
                data += f"\nRESULTS_VISIBILITY = {setting!r}\n".encode()
            dst.writestr(item, data)
    return out


@pytest.fixture(scope="module")
def otter_results(built, tmp_path_factory) -> dict:
    """The module's three `otter run`s, two at a time: the release and a wrong entry with
    the course's setting, the release with a zip whose setting shows everything at once."""
    tmp = tmp_path_factory.mktemp("visibility")
    w02 = write_corpus(RELEASE, tmp / "subs", ["w02_softmax_in_hard_mode"])[0]
    visible = _zip_with_visibility(built["zip"], tmp / "visible.zip", VISIBLE_AT_ONCE)
    got = otter_runs(built["zip"], {"release": built["release"], "w02": w02,
                                    "visible": (visible, built["release"])}, tmp / "out")
    for key, value in got.items():
        assert isinstance(value, dict), value
    return got


@pytest.mark.slow
def test_otter_run_hides_verdicts_until_published(otter_results):
    results = otter_results["release"]
    lines = hidden_lines(results)
    assert any("not implemented yet" in ln for ln in lines)
    assert_hidden_until_published(results, lines)
    assert question_scores(results) == {q: 0.0 for q in QUESTIONS}

    results = otter_results["w02"]
    assert_hidden_until_published(results, hidden_lines(results))
    assert question_scores(results) == score_dict(FAILS["w02_softmax_in_hard_mode"])


@pytest.mark.slow
def test_otter_run_shows_verdicts_when_visible(otter_results):
    results = otter_results["visible"]
    lines = hidden_lines(results)
    assert any("not implemented yet" in ln for ln in lines)
    assert_visible_at_once(results, lines)
