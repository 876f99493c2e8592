"""Batch grading, as the tests and scripts call it: `grade_all` (the batch with local
workers or a Dask cluster, without `coursekit grade`'s checks) and `summarise`. The
machinery is the package `coursekit.batch`."""

from __future__ import annotations

from pathlib import Path

from coursekit.batch.grading import executor_for, grade_batch
from coursekit.batch.outputs import summarise
from coursekit.report import Report

__all__ = ["grade_all", "summarise"]


def grade_all(paths: list[Path], out_dir: Path, jobs: int | None = None, progress: bool = True,
              require: str | None = None, cluster: str | None = None) -> list[tuple[str, Report]]:
    """Grade every submission under `paths` into `out_dir` (`batch.grading.grade_batch`)
    on `jobs` local workers or the Dask cluster at `cluster`; the rows graded."""
    return grade_batch(paths, out_dir, executor_for(jobs, cluster, require), progress).rows
