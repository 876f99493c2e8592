"""Grade submissions with the built autograder through `otter run`, one process each.

Each submission is graded by `otter run` in its own process and temporary folder,
under the time limit from `course_config.py`; whatever happens, the submission gets
a row in `grades.csv` and a `results.json` in its feedback folder.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import course_config as cfg

QUESTIONS = list(cfg.AUTOGRADED_POINTS)


@dataclass
class Grade:
    """The outcome of grading one submission."""

    student: str
    scores: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    message: str = ""

    @property
    def total(self) -> float:
        return sum(self.scores.values())


def scores_from_results(results: dict) -> dict[str, float]:
    """Per-question scores from a Gradescope-format results.json (missing questions score 0)."""
    scores = {q: 0.0 for q in QUESTIONS}
    for test in results.get("tests", []):
        if test.get("name") in scores and test.get("score") is not None:
            scores[test["name"]] = float(test["score"])
    return scores


def grade_submission(submission: Path, feedback_dir: Path, autograder: Path = cfg.AUTOGRADER_ZIP,
                     timeout: float = cfg.TIME_LIMIT_S) -> Grade:
    """Grade one notebook (or otter export zip) with `otter run`; never raises for bad input."""
    grade = Grade(student=submission.stem)
    feedback_dir.mkdir(parents=True, exist_ok=True)
    if not autograder.is_file():
        raise FileNotFoundError(f"autograder zip {autograder} not found: run `coursekit build` first")
    with tempfile.TemporaryDirectory(prefix="coursekit-grade-") as tmp:
        cmd = [sys.executable, "-m", "otter", "run", "-a", str(autograder.resolve()),
               "-o", tmp, "--no-logo", str(submission.resolve())]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            grade.status, grade.message = "timeout", f"timed out after {timeout:.0f} s"
            grade.scores = {q: 0.0 for q in QUESTIONS}
            return grade
        results_path = Path(tmp) / "results.json"
        if proc.returncode != 0 or not results_path.is_file():
            last = (proc.stderr or proc.stdout).strip().splitlines()
            grade.status = "error"
            grade.message = last[-1][:200] if last else f"otter run exited with {proc.returncode}"
            grade.scores = {q: 0.0 for q in QUESTIONS}
            return grade
        shutil.copy(results_path, feedback_dir / "results.json")
        grade.scores = scores_from_results(json.loads(results_path.read_text()))
    return grade


def write_csv(grades: list[Grade], path: Path) -> None:
    """Write grades.csv atomically: one row per submission, one column per question."""
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *QUESTIONS, "total", "status", "message"])
        for g in grades:
            writer.writerow([g.student, *(f"{g.scores.get(q, 0.0):g}" for q in QUESTIONS),
                             f"{g.total:g}", g.status, g.message])
    os.replace(tmp, path)


def find_submissions(paths: list[Path]) -> list[Path]:
    """Expand folders into the notebooks and zips they contain, sorted."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(x for x in p.rglob("*") if x.suffix in (".ipynb", ".zip")
                            and ".ipynb_checkpoints" not in x.parts)
        else:
            found.append(p)
    return found


def grade_all(paths: list[Path], out_dir: Path, autograder: Path = cfg.AUTOGRADER_ZIP) -> list[Grade]:
    """Grade every submission under `paths`; write `out_dir/grades.csv` and per-student feedback."""
    out_dir.mkdir(parents=True, exist_ok=True)
    grades = []
    for sub in find_submissions(paths):
        g = grade_submission(sub, out_dir / "feedback" / sub.stem, autograder)
        print(f"{g.student}: {g.total:g}/{sum(cfg.AUTOGRADED_POINTS.values()):g} {g.status} {g.message}",
              flush=True)
        grades.append(g)
    write_csv(grades, out_dir / "grades.csv")
    return grades
