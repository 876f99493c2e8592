"""The one interface between the batch and whatever grades it: local worker processes
(`pool.LocalPool`) or a Dask cluster (`dask_executor.DaskExecutor`).

An executor gets the tasks and a `Results` to tell, in this process, as each task
finishes: `graded(task, text)` with the report a grader encoded, or `failed(task, message)`
when grading it failed (an error row, graded again on the next run). A task it never
tells about was not graded: that happens only when it raises `BatchStopped`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

RETRIED = "it is retried on the next run"
WORKER_DIED = f"the grading process died while grading it; {RETRIED}"


@dataclass(frozen=True)
class Task:
    """One submission to grade: its file and its content key (the stored report's name)."""

    path: Path
    key: str


class Results(Protocol):
    """Where an executor puts what it graded (`grading.Collector` stores it)."""

    def graded(self, task: Task, text: str) -> None:
        """The report of `task` as a grader encoded it (decoded strictly by the batch)."""

    def failed(self, task: Task, message: str) -> None:
        """Grading `task` failed; `message` is its error row's one line."""


class Executor(Protocol):
    """A way to grade a batch."""

    def run(self, tasks: list[Task], results: Results) -> None:
        """Grade every task, telling `results` about each as it finishes; one submission
        never stops the others. Raises CannotGrade before grading when it cannot grade at
        all, BatchStopped when it loses its workers in the middle."""


class CannotGrade(RuntimeError):
    """Nothing can be graded (a setting, the data, the sandbox, an unreachable cluster):
    the message is one line for the TA."""


class BatchStopped(RuntimeError):
    """The executor lost what grades (the Dask scheduler) in the middle of a batch: the
    tasks it had not told about are not graded (no row), and a rerun grades them. The
    message is one line for the TA."""


def internal_error(exc: BaseException) -> str:
    """An error row's line for a task that raised: the type only (the text of an arbitrary
    exception may quote the submission)."""
    return f"grading failed with an internal error ({type(exc).__name__}); {RETRIED}"
