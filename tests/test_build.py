"""The build: committed outputs match a fresh build, the release hides solutions and
hidden tests, and course_config.py and the master notebook cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

import course_config as cfg
from coursekit import build as B


def _solution_lines() -> list[str]:
    """Code lines inside the master notebook's solution blocks."""
    lines, inside = [], False
    for cell in nbformat.read(cfg.SOURCE_NOTEBOOK, as_version=4).cells:
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


def test_committed_outputs_match_fresh_build(built):
    for kind, committed in (("release", cfg.RELEASE_DIR), ("solutions", cfg.SOLUTIONS_DIR)):
        fresh = built[kind].read_bytes()
        assert (committed / f"{cfg.ASSIGNMENT}.ipynb").read_bytes() == fresh, (
            f"{committed} differs from a fresh build: run `make build` and commit")


def test_committed_nbgrader_course_matches_fresh_build(built):
    fresh, committed = built["nbgrader_course"], cfg.NBGRADER_COURSE_DIR
    for rel in ("nbgrader_config.py", ".gitignore",
                f"source/{cfg.ASSIGNMENT}/{cfg.ASSIGNMENT}.ipynb"):
        assert (committed / rel).read_bytes() == (fresh / rel).read_bytes(), (
            f"{committed / rel} differs from a fresh build: run `make build` and commit")


def test_question_order_is_the_config_order():
    assert list(cfg.AUTOGRADED_POINTS) == ["lookup", "retrieve", "forward", "training"]


def test_second_build_is_byte_identical(built, tmp_path):
    again = B.build(out_root=tmp_path, run_tests=False, quiet=True)
    for kind in ("release", "solutions", "nbgrader_source"):
        assert again[kind].read_bytes() == built[kind].read_bytes()


def test_zip_has_stable_name_and_bundles_data(built):
    import zipfile

    assert built["zip"].name == "attention_basics-autograder.zip"
    names = zipfile.ZipFile(built["zip"]).namelist()
    for needed in ("files/attention_checks.py", f"files/{cfg.BUNDLE_FILE}",
                   "files/attention_config.json", "otter_config.json"):
        assert needed in names


def test_release_has_no_solution_code(built):
    text = built["release"].read_text()
    solution = _solution_lines()
    assert len(solution) >= 8  # the three stubs' bodies
    leaked = [line for line in solution if line in text]
    assert leaked == []
    for marker in B.SOLUTION_MARKERS:
        assert marker not in text


def test_release_has_no_hidden_tests(built):
    nb = nbformat.read(built["release"], as_version=4)
    text = built["release"].read_text()
    for name in ("attention_checks", "test_lookup_shapes", "test_forward_output",
                 "test_training_mse", "hidden=True", "training_check"):
        assert name not in text
    tests = nb.metadata["otter"]["tests"]
    assert set(tests) == set(cfg.AUTOGRADED_POINTS)
    for source in tests.values():
        assert "hidden=False" in source and "hidden=True" not in source


def test_release_stubs_raise_not_implemented(built):
    nb = nbformat.read(built["release"], as_version=4)
    stubs = [c.source for c in nb.cells if "NotImplementedError" in c.source]
    assert len(stubs) == 3
    for src in stubs:
        assert re.search(r'raise NotImplementedError\("(lookup|retrieve|AttentionTest.forward) is not', src)


def test_solutions_are_clean_and_public_only(built):
    nb = nbformat.read(built["solutions"], as_version=4)
    text = built["solutions"].read_text()
    assert "NotImplementedError" not in text and "BEGIN SOLUTION" not in text
    assert set(nb.metadata["otter"]["tests"]) == set(cfg.AUTOGRADED_POINTS)
    assert "attention_checks" not in text


def test_manual_questions_have_model_answers(built):
    text = built["solutions"].read_text()
    assert text.count("**Model answer.**") == len(cfg.MANUAL_POINTS)
    assert "**Model answer.**" not in built["release"].read_text()


def test_points_come_from_config(tmp_path, monkeypatch):
    monkeypatch.setitem(cfg.AUTOGRADED_POINTS, "lookup", 7)
    staged = B.stage_master(cfg.SOURCE_NOTEBOOK, tmp_path / "stage", _fake_bundle(tmp_path))
    questions = [c.source for c in nbformat.read(staged, as_version=4).cells
                 if c.cell_type == "raw" and c.source.startswith("# BEGIN QUESTION")]
    assert "# BEGIN QUESTION\nname: lookup\npoints: 7" in questions
    assert "# BEGIN QUESTION\nname: q6_2\nmanual: true\npoints: 2" in questions


def _fake_bundle(tmp_path: Path) -> Path:
    p = tmp_path / "fake.npz"
    p.write_bytes(b"")
    return p


def test_question_missing_from_config_is_an_error(tmp_path, monkeypatch):
    # a new dict, not delitem: restoring by re-insertion would reorder the questions
    monkeypatch.setattr(cfg, "AUTOGRADED_POINTS",
                        {q: p for q, p in cfg.AUTOGRADED_POINTS.items() if q != "retrieve"})
    with pytest.raises(B.BuildError, match="question 'retrieve' has no points in course_config.py"):
        B.stage_master(cfg.SOURCE_NOTEBOOK, tmp_path / "stage", _fake_bundle(tmp_path))


def test_config_question_missing_from_notebook_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setitem(cfg.MANUAL_POINTS, "q9_9", 1)
    with pytest.raises(B.BuildError, match="lacks: q9_9"):
        B.stage_master(cfg.SOURCE_NOTEBOOK, tmp_path / "stage", _fake_bundle(tmp_path))


def test_unreadable_master_is_named(tmp_path):
    bad = tmp_path / "master.ipynb"
    bad.write_text("{not json")
    with pytest.raises(B.BuildError, match=f"{bad}: not a readable notebook"):
        B.stage_master(bad, tmp_path / "stage", _fake_bundle(tmp_path))
