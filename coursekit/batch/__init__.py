"""Grading a class: `coursekit grade`'s machinery, one job per module, in the order a
submission goes through it.

- `submissions`: finding the submissions under the paths given and their safe student
  ids (plain folders, a Gradescope export's names).
- `store`: the grader's version, each submission's content key, and the stored reports
  (`.reports/KEY.json`, written atomically): what makes a run resumable.
- `executor`: the one small interface every way of grading a batch implements; `pool`
  (local worker processes) and `dask_executor` (a Dask cluster, whose workers run
  `dask_worker`) implement it.
- `outputs`: grades.csv, the per-student feedback, the summary and the charts.
- `grading`: the grading API the CLI calls (checks before grading, then the batch).
- `otter_run`: one submission through `otter run` and the built zip (the self-check).
"""
