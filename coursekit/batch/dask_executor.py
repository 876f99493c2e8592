"""The Dask executor: `coursekit grade ... --cluster tcp://HOST:PORT`, the TA's side.

The TA's machine reads each submission (bounded, never through a link; a file the
grader would refuse gets its `bad input` report here and is never sent) and sends its
bytes, their sha256 and the file name as one task: no worker needs the TA's files. Each
Dask worker grades with its warm grader (`dask_worker`) and returns the report encoded;
the batch decodes and stores it as soon as it arrives, so an interrupted run resumes.

Dask moves the tasks of a worker that dies to the others; a task that still fails
(KilledWorker, a refusal, an exception, a report whose sandbox failed) becomes that
submission's error row, and the batch goes on. A lost scheduler stops the batch with one
line (`BatchStopped`): what was not graded has no row, and the next run grades it. A
worker with other code than the TA's checkout is refused before grading starts.

Dask itself trusts its workers and its scheduler (they exchange pickles): run them on
machines you control, on a private network. The strict decoding guards the stored
reports against a worker with other code or a bug, not against a hostile worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coursekit.batch.dask_worker import GraderPlugin, WorkerRefused, grade_task, worker_version
from coursekit.batch.executor import (RETRIED, WORKER_DIED, BatchStopped, CannotGrade, Results, Task,
                                      internal_error)
from coursekit.batch.store import bounded_bytes, grader_version
from coursekit.report import all_failed, encode
from coursekit.submission import Rules, SubmissionError, check_submission_file

CONNECT_TIMEOUT_S = 10
WORKER_WAIT_S = 120  # how long a batch waits while no worker can take its tasks
CHECK_EVERY_S = 5  # how often the batch looks at the workers
POLL_S = 0.05
MIN_IN_FLIGHT = 4  # tasks sent ahead of the results, at least; twice the workers' threads
MAX_MESSAGE_CHARS = 300


class ClusterError(CannotGrade):
    """The cluster cannot grade this batch (unreachable, no suitable worker, other code)."""


def task_resources(workers: dict[str, dict[str, float]], device: str) -> dict[str, int] | None:
    """The resources every task asks for, from the connected workers' resources and the
    training check's device setting: a GPU when one is advertised and the setting allows
    it (the tasks then go to GPU workers only); ClusterError when it says "cuda" and no
    worker has one."""
    has_gpu = any((res or {}).get("GPU", 0) >= 1 for res in workers.values())
    if device == "cuda" and not has_gpu:
        raise ClusterError('course_config.DEVICE is "cuda" but no connected Dask worker advertises '
                           'a GPU (start GPU workers with `dask worker ... --resources GPU=1`)')
    return {"GPU": 1} if has_gpu and device != "cpu" else None


def _submission_bytes(path: Path, rules: Rules) -> bytes:
    """The file's bytes, read as the grader reads it (no link, a regular file, at most
    the size cap); SubmissionError with the grader's own message otherwise."""
    check_submission_file(path, rules)  # the grader's own refusals and words
    try:  # the worker's grader checks the bytes again, whatever happened to the file since
        return bounded_bytes(path, rules.limit_bytes)
    except OSError:
        check_submission_file(path, rules)  # it changed since: its refusal now
        raise


def _one_line(text: object) -> str:
    line = " ".join(str(text).split())
    return line[:MAX_MESSAGE_CHARS] + ("…" if len(line) > MAX_MESSAGE_CHARS else "")


def _failure(exc: BaseException) -> str:
    """The error row's message for a task that failed: the type only (the text of an
    arbitrary exception may quote the submission), ours in full."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return WORKER_DIED
    if isinstance(exc, WorkerRefused):
        return f"{_one_line(exc)}; {RETRIED}"
    return internal_error(exc)


def _connect(address: str) -> Any:
    from distributed import Client
    from distributed.comm.addressing import parse_address, parse_host_port

    try:  # checked first: Client() would leave a half-made client behind
        host, _ = parse_host_port(parse_address(address)[1])
        if not host:
            raise ValueError("no host")
    except ValueError as exc:
        raise ClusterError(f"{address!r} is not a scheduler address like tcp://HOST:8786 ({exc})") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError (bad address)...
        raise ClusterError(f"cannot reach the Dask scheduler at {address} "
                           f"({_one_line(exc) or type(exc).__name__})") from None


def _workers(client: Any, address: str) -> dict[str, dict[str, Any]]:
    """The connected workers' information; waits a while for a first one to join."""
    workers = client.scheduler_info()["workers"]
    if not workers:
        print(f"waiting up to {WORKER_WAIT_S} s for a Dask worker to join {address}", flush=True,
              file=sys.stderr)
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except Exception:  # noqa: BLE001 - dask's TimeoutError
            raise ClusterError(f"no Dask worker joined the scheduler at {address} "
                               f"within {WORKER_WAIT_S} s") from None
        workers = client.scheduler_info()["workers"]
    return workers


def routing(client: Any, address: str, device: str) -> dict[str, int] | None:
    """`task_resources` for the workers connected now and the course's device setting."""
    workers = _workers(client, address)
    return task_resources({a: w.get("resources") or {} for a, w in workers.items()}, device)


def _threads(client: Any, resources: dict[str, int] | None) -> int:
    """Threads of the connected workers that can take the tasks (with a GPU if asked);
    0 while the scheduler cannot be asked (the client reconnects meanwhile)."""
    try:
        workers = client.scheduler_info()["workers"].values()
    except Exception:  # noqa: BLE001 - CommClosedError, OSError, TimeoutError
        return 0
    return sum(int(w.get("nthreads") or 0) for w in workers
               if all((w.get("resources") or {}).get(k, 0) >= v for k, v in (resources or {}).items()))


def _check_versions(client: Any, version: str, assignment: str) -> None:
    """Stop before grading when a connected worker would grade with other code."""
    try:
        theirs = client.run(worker_version, assignment)
    except Exception as exc:  # noqa: BLE001 - a worker without coursekit, or gone
        raise ClusterError(f"the Dask workers cannot run coursekit ({type(exc).__name__}: "
                           f"{_one_line(exc)}): install the project on every worker") from None
    other = sorted(addr for addr, v in theirs.items() if v != version)
    if other:
        raise ClusterError(f"{len(other)} Dask worker(s) run another version of coursekit or "
                           f"course_config.py than this checkout ({', '.join(other[:3])}): "
                           f"install the same checkout on every worker, and restart the workers "
                           f"after changing it")


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own logging off while a batch runs and its client closes: a lost scheduler
    is one line of ours, not the client's tracebacks of every reconnection attempt.
    (Dask's configuration gives some of its loggers levels of their own: each is set.)"""
    names = ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


class DaskExecutor:
    """Grades on the Dask cluster whose scheduler is at `address` (`executor.Executor`)."""

    def __init__(self, address: str, assignment: Any, course: Any, require: str | None = None) -> None:
        self.address = address
        self.assignment = assignment  # coursekit.course.Assignment
        self.course = course  # coursekit.course.Course
        self.require = require

    def _lost(self, left: int) -> BatchStopped:
        return BatchStopped(f"lost the Dask scheduler at {self.address}: {left} submission(s) not "
                            f"graded; run the same command again to grade them")

    def run(self, tasks: list[Task], results: Results) -> None:
        """Grade every task on the cluster. ClusterError before grading when the scheduler
        cannot be reached, no worker joins, a worker runs other code, or the course asks
        for CUDA and no worker has a GPU; BatchStopped when the scheduler is lost."""
        name = self.assignment.name
        version = grader_version(self.course.config_file, self.assignment.folder)
        with _quiet_dask(), _connect(self.address) as client:  # quiet until the client has closed
            resources = routing(client, self.address, self.course.device)
            _check_versions(client, version, name)
            plugin = f"coursekit-grader-{name}-{self.require or 'any'}"
            client.register_plugin(GraderPlugin(name, self.require), name=plugin)
            self._grade(client, plugin, version, resources, tasks, results)

    def _grade(self, client: Any, plugin: str, version: str, resources: dict[str, int] | None,
               tasks: list[Task], results: Results) -> None:
        import dask
        from distributed import as_completed

        queue = deque(tasks)
        running: dict[Any, Task] = {}
        finished = as_completed(loop=client.loop)  # not the default client: there is none
        window, checked, idle_since = MIN_IN_FLIGHT, 0.0, None
        while queue or running:
            if client.status not in ("running", "connecting"):  # the client gave up reconnecting
                raise self._lost(len(queue) + len(running))
            now = time.monotonic()
            if now - checked >= CHECK_EVERY_S:  # workers come and go (autoscaling, deaths)
                threads = _threads(client, resources)
                window, checked = max(MIN_IN_FLIGHT, 2 * threads), now
                idle_since = None if threads else (idle_since or now)
                if idle_since is not None and now - idle_since > WORKER_WAIT_S:
                    if client.status != "running":
                        raise self._lost(len(queue) + len(running))
                    for t in [*running.values(), *queue]:  # Dask would wait for ever
                        results.failed(t, f"no Dask worker could take it for {WORKER_WAIT_S} s (all "
                                          f"gone, or none with a GPU); {RETRIED}")
                    with contextlib.suppress(Exception):
                        client.cancel(list(running))
                    return
            while queue and len(running) < window and client.status == "running":
                t = queue.popleft()
                try:
                    raw = _submission_bytes(t.path, self.course.rules)
                except SubmissionError as exc:  # refused here, never sent: the grader's report
                    cases = self.assignment.lab().case_table(self.assignment.points)
                    results.graded(t, encode(all_failed("bad input", str(exc), cases)))
                    continue
                # A submission is a large argument for a task; Dask warns of repeated data.
                with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GiB"}):
                    future = client.submit(
                        grade_task, plugin, version, t.path.name, raw, hashlib.sha256(raw).hexdigest(),
                        key=f"coursekit-grade-{t.key}-{uuid.uuid4().hex[:8]}", pure=False,
                        resources=resources)
                running[future] = t
                finished.add(future)
            if not finished.has_ready():
                time.sleep(POLL_S)
                continue
            future = next(finished)
            if future.cancelled() or future.status == "cancelled":  # the scheduler forgot it
                raise self._lost(len(queue) + len(running))
            t = running.pop(future)
            try:
                text = future.result()
            except Exception as exc:  # noqa: BLE001 - the task failed: KilledWorker, WorkerRefused...
                results.failed(t, _failure(exc))
            else:
                results.graded(t, text)
            future.release()  # the scheduler forgets the task and its bytes
