"""The local executor: `--jobs N` worker processes on this machine.

Each worker loads the grader once (torch, the hidden inputs, the MNIST slice) and then
grades one submission after another, each in a fresh sandboxed child forked from it, so
no import or start-up cost is paid per submission. A worker that dies (the OOM killer,
a kill -9) breaks the pool: the tasks that had not started go to a fresh pool, and those
that were running are graded again one per pool, so that only the one that kills its
worker alone gets an error row.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

from coursekit.batch.executor import WORKER_DIED, CannotGrade, Results, Task, internal_error
from coursekit.report import encode

# (sandbox slot, sandboxes sharing this machine) -> an object with grade_path(Path) -> Report
MakeGrader = Callable[[int, int], Any]

_GRADER: Any = None  # this worker's grader
_STARTED: Any = None  # the pool's queue of task keys, put when a task starts


def course_grader(course: Any, assignment: Any, require: str | None) -> MakeGrader:
    """The grader of `assignment` (a `coursekit.course.Assignment` of `course`) for each
    worker; `require`: the weakest sandbox level allowed."""
    def make(slot: int, sandboxes: int) -> Any:
        return course.grader(assignment, slot=slot, require=require, sandboxes=sandboxes)
    return make


def _die_with_parent() -> None:
    """Ask the kernel to kill this worker when `coursekit grade` dies (kill -9)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _init_worker(make_grader: MakeGrader, sandboxes: int, slots: "mp.Queue[int]", started: Any) -> None:
    global _GRADER, _STARTED
    _STARTED = started
    _die_with_parent()  # kill -9 of `coursekit grade` leaves no workers behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _GRADER = make_grader(slots.get(), sandboxes)


def _task(key: str, path: str) -> str:
    # Said before grading, synchronously (SimpleQueue): if this worker dies, the parent
    # knows which submission it was grading.
    _STARTED.put(key)
    return encode(_GRADER.grade_path(Path(path)))


class LocalPool:
    """`jobs` worker processes on this machine, each with a grader from `make_grader`
    (told its sandbox slot, and that `jobs` sandboxes share the machine's memory)."""

    def __init__(self, jobs: int, make_grader: MakeGrader) -> None:
        self.jobs = max(1, jobs)
        self.make_grader = make_grader

    def run(self, tasks: list[Task], results: Results) -> None:
        """Grade every task (`executor.Executor`); CannotGrade when the workers die
        before grading anything, three pools in a row."""
        queue, alone = list(tasks), []
        idle_pools = 0
        while queue or alone:
            if alone:
                batch, width = [alone.pop(0)], 1
            else:
                batch, queue = queue, []
                width = min(self.jobs, len(batch))
            unfinished, started = self._run_pool(batch, width, results)
            progress = bool(started) or len(unfinished) < len(batch)
            idle_pools = 0 if progress else idle_pools + 1
            if idle_pools >= 3:  # workers die before grading anything: the grader is broken
                raise CannotGrade("the grading workers stopped before grading anything "
                                  "(see the messages above)")
            for t in unfinished:
                if t.key not in started:
                    queue.append(t)
                elif width == 1:  # it was the only submission being graded: it killed the worker
                    results.failed(t, WORKER_DIED)
                else:
                    alone.append(t)

    def _run_pool(self, tasks: list[Task], jobs: int, results: Results) -> tuple[list[Task], set[str]]:
        """Grade `tasks` in one pool of `jobs` workers. Returns the tasks left unfinished
        when a worker died (the pool is then broken) and the keys of those that started."""
        ctx = mp.get_context("fork")  # workers inherit torch; none has touched CUDA
        slots = ctx.Queue()
        for i in range(jobs):
            slots.put(i)
        started_queue = ctx.SimpleQueue()
        started: set[str] = set()
        unfinished: list[Task] = []

        def drain() -> None:
            while not started_queue.empty():
                started.add(started_queue.get())

        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(self.make_grader, self.jobs, slots, started_queue)) as pool:
            pending = {}
            for i, t in enumerate(tasks):
                try:
                    pending[pool.submit(_task, t.key, str(t.path))] = t
                except BrokenProcessPool:
                    unfinished += tasks[i:]
                    break
            waiting = set(pending)
            while waiting:
                done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for fut in done:
                    exc = fut.exception()
                    if isinstance(exc, BrokenProcessPool):
                        unfinished.append(pending[fut])
                    elif exc is not None:
                        results.failed(pending[fut], internal_error(exc))
                    else:
                        results.graded(pending[fut], fut.result())
                drain()
        drain()
        return unfinished, started
