"""Batch grading, as the tests and scripts call it: `grade_all` (the batch with local
workers or a Dask cluster, without `coursekit grade`'s checks) and `summarise`. The
machinery is the package `coursekit.batch`."""

from __future__ import annotations

from pathlib import Path

from coursekit import course as courses
from coursekit.batch import outputs
from coursekit.batch.grading import executor_for, grade_batch
from coursekit.report import Report

__all__ = ["grade_all", "summarise"]


def grade_all(paths: list[Path], out_dir: Path, jobs: int | None = None, progress: bool = True,
              require: str | None = None, cluster: str | None = None,
              course: courses.Course | None = None, assignment: str | None = None) -> list[tuple[str, Report]]:
    """Grade every submission of `assignment` (default: the course's first lab) under
    `paths` into `out_dir` (`batch.grading.grade_batch`) on `jobs` local workers or the
    Dask cluster at `cluster`; the rows graded."""
    course = course or courses.load()
    a = course.assignment(assignment)
    return grade_batch(paths, out_dir, executor_for(jobs, cluster, require, course, a), course, a, progress).rows


def summarise(rows: list[tuple[str, Report]], out_dir: Path, assignment: str | None = None) -> str:
    """The terminal summary and charts of a graded batch (`batch.outputs.summarise`)."""
    return outputs.summarise(rows, out_dir, courses.load().assignment(assignment))
