"""Grading through `otter run` with the built zip (what Gradescope runs): full marks for
the solutions, zero for the release, the same scores as `coursekit grade`, and the
shared attack corpus (tests/attacks, EVERY_DOOR) handled there too."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import nbformat
import pytest

from tests.helpers import (A, FAILS, RELEASE, SOLVED_DICT, SUBMISSIONS, make_notebook, otter_runs,
                           question_scores, score_dict, write_corpus)
from coursekit.grade import grade_all
from tests.attacks import ATTACKS, EVERY_DOOR, PickleMarker, SECRETS

pytestmark = pytest.mark.slow  # end to end; `make test-fast` skips it

FULL = score_dict()


# Each `otter run` costs a fresh otter process and sandbox (~16 s of CPU): two corpus
# entries show the agreement with `coursekit grade` (the lab's tests/test_corpus.py grades them all),
# and the shared attacks go through otter's front door as through the others (tests/attacks).
AGREE = ["c03_mm_bmm_switch", "w13_returns_query_image"]


@pytest.fixture(scope="module")
def runs(built, tmp_path_factory) -> dict:
    """Every `otter run` of this module, two at a time (each one a fresh otter process, as
    on Gradescope): uploads of the solutions and of the release with hostile files beside
    the notebook (modules that shadow otter, a pickled .OTTER_LOG), two corpus entries, the
    attacks, and a renamed notebook."""
    tmp = tmp_path_factory.mktemp("otter-runs")
    marker, shadows = tmp / "PWNED", tmp / "SHADOW"
    subs = {name: _hostile_upload(tmp / f"{name}.zip", built[name], shadows, marker)
            for name in ("solutions", "release")}
    for path in write_corpus(RELEASE, tmp / "agree", AGREE):
        subs[f"agree:{path.stem}"] = path
    for name in EVERY_DOOR:
        path = tmp / "attacks" / name / f"{A.name}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(make_notebook(RELEASE, ATTACKS[name][0]), path)
        subs[f"attack:{name}"] = path
    renamed = tmp / "renamed" / f"{A.name} (1).ipynb"
    renamed.parent.mkdir()
    nbformat.write(make_notebook(RELEASE, SUBMISSIONS["w01_softmax_wrong_dim"]), renamed)
    subs["renamed"] = renamed
    results = otter_runs(built["zip"], subs, tmp / "out")
    results["_marker"], results["_agree"], results["_shadows"] = marker, tmp / "agree", shadows
    return results


SHADOWS = Path(__file__).parent / "attacks" / "otter"


def _hostile_upload(path: Path, notebook: Path, marker_dir: Path, pickle_marker: Path) -> Path:
    """A Gradescope upload: `notebook`, the files of tests/attacks/otter/ (modules that
    shadow otter and the kernel launcher), each writing its marker under `marker_dir`, and
    an .OTTER_LOG whose pickle would create `pickle_marker` if otter loaded it."""
    marker_dir.mkdir(exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{A.name}.ipynb", notebook.read_text())
        for attack in sorted(SHADOWS.glob("*.py")):
            marker = marker_dir / f"{path.stem}-{attack.stem}"
            zf.writestr(attack.name, attack.read_text().replace("__MARKER__", str(marker)))
        zf.writestr(".OTTER_LOG", pickle.dumps(PickleMarker(str(pickle_marker))))
    return path


def _results(runs: dict, key: str) -> dict:
    got = runs[key]
    assert isinstance(got, dict), got
    return got


def test_solutions_earn_full_marks_with_otter_run(runs):
    assert question_scores(_results(runs, "solutions")) == SOLVED_DICT


def test_release_scores_zero_and_results_are_written(runs):
    results = _results(runs, "release")
    assert question_scores(results) == {q: 0.0 for q in FULL}
    visible = json.dumps(results)
    assert "not implemented yet" in visible  # the student learns why
    for secret in SECRETS:
        assert secret not in visible


def test_otter_run_agrees_with_coursekit_grade(runs, tmp_path):
    rows = dict(grade_all([runs["_agree"]], tmp_path / "out", jobs=2, progress=False))
    for name in AGREE:
        assert question_scores(_results(runs, f"agree:{name}")) == rows[name].scores, name


@pytest.mark.parametrize("name", EVERY_DOOR)
def test_attack_through_otter_run(runs, name):
    results = _results(runs, f"attack:{name}")
    assert tuple(question_scores(results).values()) == ATTACKS[name][1]
    visible = json.dumps(results)
    for secret in SECRETS + ("LEAK",):
        assert secret not in visible


def test_otter_log_pickle_through_otter_run(runs):
    assert question_scores(_results(runs, "solutions")) == SOLVED_DICT
    assert not runs["_marker"].exists()


def test_renamed_notebook_through_otter_run(runs):
    assert question_scores(_results(runs, "renamed")) == score_dict(FAILS["w01_softmax_wrong_dim"])


def test_upload_files_beside_the_notebook_never_run(runs):
    """An upload's otter.py and ipykernel_launcher.py (tests/attacks/otter/) ran as the
    grader's user in otter's own kernel, and the stub scored 12/12: otter now starts no
    kernel, nothing of the upload but the notebook is read, and the output says so."""
    assert question_scores(_results(runs, "release")) == {q: 0.0 for q in FULL}
    assert question_scores(_results(runs, "solutions")) == SOLVED_DICT
    assert sorted(p.name for p in runs["_shadows"].iterdir()) == []
    for key in ("release", "solutions"):
        output = _results(runs, key)["tests"][0]["output"]  # the entry students always see
        assert "ignored 2 files of the upload besides the notebook: ipykernel_launcher.py, otter.py" in output
