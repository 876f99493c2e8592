"""Shared fixtures: one fresh build per test session, in a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import A, COURSE

REPO = COURSE.root


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build release, solutions and zip from the master notebook (the solution is graded
    against every test during the build, so this fixture fails if the solution does not
    earn full marks)."""
    from coursekit.build import build

    return build(out_root=tmp_path_factory.mktemp("build"), quiet=True)


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
