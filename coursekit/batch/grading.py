"""The grading API of a class: what `coursekit grade` calls (`grade_class`), and the
batch itself (`grade_batch`) for any executor.

`grade_class` checks everything it can before grading (the results setting, the MNIST
slice, the training device and the GPUs, the sandbox this machine allows), then grades.
`grade_batch` finds the submissions, grades only those without a stored report (or with
an `error` one), stores each report as it arrives, and writes grades.csv and the
feedback. One submission never stops the batch: a task that fails, or whose report is
malformed, is that submission's `error` row (not stored: the next run grades it again).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from coursekit.batch.executor import RETRIED, BatchStopped, CannotGrade, Executor, Task
from coursekit.batch.outputs import write_outputs
from coursekit.batch.store import ReportStore, content_key, grader_version
from coursekit.batch.submissions import find_submissions
from coursekit.course import Assignment, Course
from coursekit.report import Cases, Report, ReportError, all_failed, decode


@dataclass
class Outcome:
    """What a batch graded: a row per graded submission, in the submissions' order, and
    how many were not graded (the executor stopped: no row, a rerun grades them)."""

    rows: list[tuple[str, Report]]
    assignment: Assignment
    not_graded: int = 0
    stopped: str = ""  # why some were not graded, one line

    @property
    def to_retry(self) -> int:
        """Submissions a rerun grades again: `error` rows and those not graded."""
        return sum(r.status == "error" for _, r in self.rows) + self.not_graded


class Collector:
    """The batch's `executor.Results`: decodes each report, stores it (unless the grader
    failed: status `error`), and moves the progress bar."""

    def __init__(self, store: ReportStore, bar, cases: Cases) -> None:
        self.store = store
        self.bar = bar
        self.cases = cases  # the lab's case table: what a report of it holds
        self.reports: dict[str, Report] = {}

    def graded(self, task: Task, text: str) -> None:
        try:
            report = decode(text, self.cases)
        except ReportError as exc:  # the codec's own words, never the report's
            report = all_failed("error", f"the worker's report is malformed ({exc}); {RETRIED}", self.cases)
        else:
            if report.status != "error":  # "error" is the grader's failure, not a grade
                self.store.put(task.key, report)
        self.reports[task.key] = report
        self.bar.update(1)

    def failed(self, task: Task, message: str) -> None:
        self.reports[task.key] = all_failed("error", message, self.cases)
        self.bar.update(1)


def executor_for(jobs: int | None, cluster: str | None, require: str | None, course: Course,
                 assignment: Assignment) -> Callable[[int], Executor]:
    """The executor for `jobs` local workers, or the Dask cluster at `cluster`, given the
    number of submissions to grade."""
    if cluster:
        from coursekit.batch.dask_executor import DaskExecutor  # imports Dask: only when asked for

        return lambda todo: DaskExecutor(cluster, assignment, course, require=require)
    from coursekit.batch.pool import LocalPool, course_grader

    return lambda todo: LocalPool(min(jobs or os.cpu_count() or 1, todo), course_grader(course, assignment, require))


def grade_batch(paths: list[Path], out_dir: Path, executor: Callable[[int], Executor],
                course: Course, assignment: Assignment, progress: bool = True) -> Outcome:
    """Grade every submission of `assignment` under `paths` into `out_dir` with
    `executor(number to grade)`; resumes an interrupted run. Raises CannotGrade when
    nothing can be graded."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    version = grader_version(course.config_file, assignment.folder)
    cases = assignment.lab().case_table(assignment.points)
    limit = course.rules.limit_bytes
    subs = find_submissions(paths)
    store = ReportStore(out_dir / ".reports")
    keys: dict[str, str] = {}
    reports: dict[str, Report] = {}
    todo: dict[str, Task] = {}  # by key: identical files are graded once
    for sid, path in subs:
        key = keys[sid] = content_key(path, version, limit)
        if key in reports or key in todo:
            continue
        stored = store.get(key, cases)
        if stored is None or stored.status == "error":  # the grader's failure is retried
            todo[key] = Task(path, key)
        else:
            reports[key] = stored
    stopped = ""
    if todo:
        store.folder.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=len(subs), initial=len(subs) - len(todo), unit="submission",
                   disable=not progress, desc="grading")
        collector = Collector(store, bar, cases)
        try:
            executor(len(todo)).run(list(todo.values()), collector)
        except BatchStopped as exc:  # what it graded is kept; the rest has no row
            stopped = str(exc)
        finally:
            bar.close()  # a message starts on a line of its own
        reports.update(collector.reports)
        if not stopped:  # an executor that forgot a task: an error row, not a lost one
            for key in todo.keys() - collector.reports.keys():
                reports[key] = all_failed("error", f"the grader wrote no report; {RETRIED}", cases)
    rows = [(sid, reports[keys[sid]]) for sid, _ in subs if keys[sid] in reports]
    write_outputs(rows, out_dir, assignment, course.visibility)
    return Outcome(rows, assignment, not_graded=len(subs) - len(rows), stopped=stopped)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def check_before_grading(jobs: int | None, cluster: str | None, require: str | None,
                         course: Course, assignment: Assignment, say: Callable[[str], None] = _say) -> None:
    """Everything that can stop a batch, checked before grading it, with one line each
    on where it trains and how isolated it is; CannotGrade (one line) otherwise."""
    from coursekit.lab import DataError, LabError
    from coursekit.sandbox import IsolationError, Sandbox, SandboxError, gpu

    setting = course.device
    per_gpu = course.policy.sandboxes_per_gpu
    try:
        assignment.lab()  # a broken lab folder stops here, before grading the class
        if cluster:  # whether a worker has a GPU is the cluster's to say
            gpu.valid_setting(setting)
        else:  # on a cluster each worker makes its own from its MNIST_ROOT
            assignment.data_path()  # once, here: the workers share it
            gpu.check_jobs(jobs or os.cpu_count() or 1, gpu.check_setting(setting), per_gpu)
    except (DataError, LabError, ValueError, gpu.DeviceError) as exc:
        raise CannotGrade(str(exc)) from None
    if cluster:
        if jobs is not None:
            say("note: --jobs is ignored with --cluster: the cluster's workers grade "
                "(one submission at a time each)")
        # The sandbox that counts is each worker's: it enforces --require-isolation, and
        # every row of grades.csv records the level that graded it.
        say(f"isolation: checked by each Dask worker at {cluster} (column `isolation` of "
            f"grades.csv; see docs/security.md)")
        return
    jobs = jobs or os.cpu_count() or 1
    if plan := gpu.plan(jobs, setting, per_gpu):
        say(plan)
    probe = Sandbox({}, require=require, sandboxes=jobs, device=setting, policy=course.policy,
                    memory_mb=course.limits.memory_mb)  # and the memory it has
    try:
        probe.start(probe_only=True)  # which layers this machine allows, before any grading
    except (IsolationError, SandboxError) as exc:
        raise CannotGrade(str(exc)) from None
    finally:
        probe.close()
    say(f"isolation: {probe.level} ({', '.join(probe.layers) or 'no layer'}; see docs/security.md)")


def grade_class(paths: list[Path], out_dir: Path, jobs: int | None = None, cluster: str | None = None,
                require: str | None = None, progress: bool = True,
                say: Callable[[str], None] = _say, course: Course | None = None,
                assignment: str | None = None) -> Outcome:
    """`coursekit grade`: check, then grade every submission of `assignment` (default: the
    course's first lab) under `paths` into `out_dir` on `jobs` local workers or the Dask
    cluster at `cluster`. CannotGrade (one line) when nothing can be graded (a wrong
    setting included); the Outcome says what was graded and what is to retry."""
    from coursekit import course as courses

    missing = [p for p in paths if not p.exists()]
    if missing:
        raise CannotGrade(f"no such file or folder: {', '.join(map(str, missing))}")
    try:
        course = course or courses.load()
        chosen = course.assignment(assignment)
    except courses.ConfigError as exc:
        raise CannotGrade(str(exc)) from None
    check_before_grading(jobs, cluster, require, course, chosen, say)
    return grade_batch(paths, out_dir, executor_for(jobs, cluster, require, course, chosen),
                       course, chosen, progress)
