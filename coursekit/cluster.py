"""Grading on a Dask cluster: `coursekit grade ... --cluster tcp://HOST:PORT`.

The TA's machine reads each submission (bounded, never through a link; a file the
grader would refuse gets its `bad input` report here and is never sent) and sends its
bytes, their sha256 and the file name as one task: no worker needs the TA's files. Each
Dask worker process keeps one warm grader for its lifetime (`GraderPlugin`), checks the
bytes against their hash, writes them into a private temporary folder, grades them in
its own sandbox exactly as a local worker does, and returns the report as JSON.

Back on the TA's machine every report is decoded as strictly as a stored one and stored
atomically as soon as it arrives, so an interrupted run resumes. Dask moves the tasks of
a worker that dies to the others; a task that still fails (KilledWorker, a refusal, an
exception, a malformed report, a report whose sandbox failed) becomes that submission's
error row, not stored, so the next run grades it again; the batch goes on. A worker with
other code than the TA's checkout is refused before grading starts.

Dask itself trusts its workers and its scheduler (they exchange pickles): run them on
machines you control, on a private network. The strict parsing here guards the stored
reports against a worker with other code or a bug, not against a hostile worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import deque
from pathlib import Path
from typing import Any

from distributed import KilledWorker, WorkerPlugin

import course_config as cfg
from coursekit import grade
from coursekit.report import ReportError, all_failed, decode, encode
from coursekit.submission import SubmissionError

CONNECT_TIMEOUT_S = 10
WORKER_WAIT_S = 120  # how long a batch waits while no worker can take its tasks
CHECK_EVERY_S = 5  # how often the batch looks at the workers
POLL_S = 0.05
MIN_IN_FLIGHT = 4  # tasks sent ahead of the results, at least; twice the workers' threads
SLOTS = 64  # sandbox slots per machine; the uid claim skips a taken one anyway
MAX_MESSAGE_CHARS = 300


class ClusterError(RuntimeError):
    """The cluster cannot grade this batch (unreachable, no suitable worker, other code);
    the message is one line for the TA."""


class WorkerRefused(RuntimeError):
    """A worker would not grade a task: its bytes are damaged, its name is unsafe, the
    worker runs other code, or its sandbox is weaker than required."""


# --- the worker's side -------------------------------------------------------------------

_VERSION: str | None = None


def worker_version() -> str:
    """This process's grader version, computed once (the code it has loaded)."""
    global _VERSION
    if _VERSION is None:
        _VERSION = grade.grader_version()
    return _VERSION


def _check_name(name: object) -> str:
    """The submission's file name, which the grader's messages quote: one plain path
    component (a Unix file name cannot hold '/' or NUL; anything else is not one)."""
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name
            or len(os.fsencode(name)) > 255):
        raise WorkerRefused("the submission's file name is not a plain file name")
    return name


class GraderPlugin(WorkerPlugin):
    """One warm grader per Dask worker process, made on its first task, closed with the worker.

    Registered by `grade_on_cluster` under a name that includes the required isolation
    level, so that batches asking the same thing share the warm grader. Tasks on one
    worker are graded one at a time (a worker started with more than one thread waits).
    """

    idempotent = True  # a second batch does not replace (and close) a warm grader

    def __init__(self, require: str | None = None) -> None:
        self.require = require

    def setup(self, worker: Any) -> None:
        """Called on the worker when it starts or the plugin is registered: cheap, the
        grader itself is made by the first task (not on the worker's event loop)."""
        self._lock = threading.Lock()
        self._grader = None
        self._refusal: str | None = None  # why this worker's sandbox cannot grade, once known
        self._address = str(getattr(worker, "address", "") or "this worker")
        self._slot = zlib.crc32(self._address.encode()) % SLOTS  # distinct enough on one machine
        # Submissions are written under the worker's own folder: Dask purges what a killed
        # worker left there when the next worker starts on the machine.
        self._scratch = getattr(worker, "local_directory", None)

    def teardown(self, worker: Any) -> None:
        """Called when the worker closes: stop the grader's sandbox."""
        grader, self._grader = self._grader, None
        if grader is not None:
            grader.close()

    def _warm_grader(self):
        """The grader, made and its sandbox started on first use. A sandbox weaker than
        `require` refuses this and every later task here (the kernel will not change);
        one that fails to start is tried again by the next task."""
        if self._refusal:
            raise WorkerRefused(self._refusal)
        if self._grader is None:
            from coursekit.data import DataError
            from coursekit.engine import default_grader
            from coursekit.sandbox import IsolationError, SandboxError, gpu

            # The GPU: one of those this worker may use (dask-cuda or Slurm narrow them with
            # CUDA_VISIBLE_DEVICES), picked by its address so that workers spread over them.
            number = self._slot % max(1, len(gpu.visible_minors()))
            try:
                grader = default_grader(slot=self._slot, require=self.require, gpu_number=number)
            except (DataError, gpu.DeviceError) as exc:  # this machine's MNIST_ROOT or GPU
                raise WorkerRefused(f"worker {self._address}: {exc}") from None
            try:
                grader.isolation  # noqa: B018 - starts the sandbox, which checks `require`
            except IsolationError as exc:
                grader.close()
                self._refusal = f"worker {self._address} cannot grade: {exc}"
                raise WorkerRefused(self._refusal) from None
            except (SandboxError, gpu.DeviceError) as exc:
                grader.close()
                raise WorkerRefused(f"worker {self._address}: the sandbox did not start ({exc})") from None
            self._grader = grader
        return self._grader

    def grade(self, version: str, name: str, data: bytes, digest: str) -> str:
        """Grade one submission's bytes; the report as JSON (`report.encode`)."""
        if version != worker_version():
            raise WorkerRefused(f"this worker runs another version of coursekit or course_config.py "
                                f"({worker_version()}, the batch wants {version}): install the "
                                f"same checkout on every worker")
        name = _check_name(name)
        if not isinstance(data, bytes) or hashlib.sha256(data).hexdigest() != digest:
            raise WorkerRefused("the submission's bytes do not match their sha256")
        folder = tempfile.mkdtemp(prefix="coursekit-submission-", dir=self._scratch)  # 0700
        try:
            path = Path(folder, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            with self._lock:
                report = self._warm_grader().grade_path(path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return encode(report)


def _grade_task(plugin: str, version: str, name: str, data: bytes, digest: str) -> str:
    """The task each worker runs: grade with this worker's warm grader."""
    from distributed import get_worker

    grader = get_worker().plugins.get(plugin)
    if not isinstance(grader, GraderPlugin):
        raise WorkerRefused("this worker has no coursekit grader")
    return grader.grade(version, name, data, digest)


# --- the TA's side ---------------------------------------------------------------------

def task_resources(workers: dict[str, dict[str, float]], device: str) -> dict[str, int] | None:
    """The resources every task asks for, from the connected workers' resources and the
    training check's device setting: a GPU when one is advertised and the setting allows
    it (the tasks then go to GPU workers only); ClusterError when it says "cuda" and no
    worker has one."""
    has_gpu = any((res or {}).get("GPU", 0) >= 1 for res in workers.values())
    if device == "cuda" and not has_gpu:
        raise ClusterError('TRAINING_CHECK["device"] is "cuda" but no connected Dask worker advertises '
                           'a GPU (start GPU workers with `dask worker ... --resources GPU=1`)')
    return {"GPU": 1} if has_gpu and device != "cpu" else None


def _submission_bytes(path: Path) -> bytes:
    """The file's bytes, read as the grader reads it (no link, a regular file, at most
    the size cap); SubmissionError with the grader's own message otherwise."""
    from coursekit import submission as sub

    name = sub.quote(path.name)
    limit = cfg.MAX_SUBMISSION_MB << 20
    try:
        with sub._open_regular(path, name) as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise sub._too_large(name)
            data = f.read(limit + 1)  # bounded even if the file grew after fstat
    except SubmissionError:
        raise
    except Exception as exc:  # noqa: BLE001 - one submission's file never stops the batch
        raise SubmissionError(sub._unexpected(path, exc)) from None
    if len(data) > limit:
        raise sub._too_large(name)
    return data


def _one_line(text: object) -> str:
    line = " ".join(str(text).split())
    return line[:MAX_MESSAGE_CHARS] + ("…" if len(line) > MAX_MESSAGE_CHARS else "")


def _failure(exc: BaseException) -> str:
    """The error row's message for a task that failed: the type only (the text of an
    arbitrary exception may quote the submission), ours in full."""
    if isinstance(exc, KilledWorker):
        return grade.WORKER_DIED
    if isinstance(exc, WorkerRefused):
        return f"{_one_line(exc)}; it is retried on the next run"
    return f"grading failed with an internal error ({type(exc).__name__}); it is retried on the next run"


def _connect(address: str):
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


def _workers(client, address: str) -> dict[str, dict[str, Any]]:
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


def _routing(client, address: str) -> dict[str, int] | None:
    """`task_resources` for the workers connected now and this checkout's device setting."""
    workers = _workers(client, address)
    return task_resources({a: w.get("resources") or {} for a, w in workers.items()},
                          str(cfg.TRAINING_CHECK.get("device", "auto")))


def _threads(client, resources: dict[str, int] | None) -> int:
    """Threads of the connected workers that can take the tasks (with a GPU if asked);
    0 while the scheduler cannot be asked (the client reconnects meanwhile)."""
    try:
        workers = client.scheduler_info()["workers"].values()
    except Exception:  # noqa: BLE001 - CommClosedError, OSError, TimeoutError
        return 0
    return sum(int(w.get("nthreads") or 0) for w in workers
               if all((w.get("resources") or {}).get(k, 0) >= v for k, v in (resources or {}).items()))


def _check_versions(client, version: str) -> None:
    """Stop before grading when a connected worker would grade with other code."""
    try:
        theirs = client.run(worker_version)
    except Exception as exc:  # noqa: BLE001 - a worker without coursekit, or gone
        raise ClusterError(f"the Dask workers cannot run coursekit ({type(exc).__name__}: "
                           f"{_one_line(exc)}): install the project on every worker") from None
    other = sorted(addr for addr, v in theirs.items() if v != version)
    if other:
        raise ClusterError(f"{len(other)} Dask worker(s) run another version of coursekit or "
                           f"course_config.py than this checkout ({', '.join(other[:3])}): "
                           f"install the same checkout on every worker, and restart the workers "
                           f"after changing it")


def grade_on_cluster(todo: list[grade._Todo], address: str, bar, require: str | None = None) -> dict[str, str]:
    """Grade every task on the Dask cluster at `address`; `grade._grade_batch`'s contract.

    Each report is stored at its task's `report_path` as soon as it arrives; returns the
    error message of each task that failed (its workers died too often, a refusal, an
    exception, a malformed report, a report whose sandbox failed, no worker able to take
    it for WORKER_WAIT_S); those are not stored. Raises ClusterError, before grading
    anything, when the scheduler cannot be reached, no worker joins, a worker runs other
    code, or the course asks for CUDA and no worker has a GPU.
    """
    import dask
    from distributed import as_completed

    version = grade.grader_version()
    errors: dict[str, str] = {}
    with _connect(address) as client:
        resources = _routing(client, address)
        _check_versions(client, version)
        plugin = f"coursekit-grader-{require or 'any'}"
        client.register_plugin(GraderPlugin(require), name=plugin)

        queue = deque(todo)
        running: dict[Any, grade._Todo] = {}
        results = as_completed(loop=client.loop)  # not the default client: there is none
        window, checked, idle_since = MIN_IN_FLIGHT, 0.0, None
        while queue or running:
            now = time.monotonic()
            if now - checked >= CHECK_EVERY_S:  # workers come and go (autoscaling, deaths)
                threads = _threads(client, resources)
                window, checked = max(MIN_IN_FLIGHT, 2 * threads), now
                idle_since = None if threads else (idle_since or now)
                if idle_since is not None and now - idle_since > WORKER_WAIT_S:
                    for t in [*running.values(), *queue]:  # Dask would wait for ever
                        errors[t.key] = (f"no Dask worker could take it for {WORKER_WAIT_S} s (all gone, "
                                         f"or none with a GPU); it is retried on the next run")
                        bar.update(1)
                    with contextlib.suppress(Exception):  # a scheduler that has gone
                        client.cancel(list(running))
                    break
            while queue and len(running) < window:
                t = queue.popleft()
                try:
                    raw = _submission_bytes(t.path)
                except SubmissionError as exc:  # refused here, never sent: the grader's report
                    grade._write_atomic(t.report_path, encode(all_failed("bad input", str(exc))))
                    bar.update(1)
                    continue
                # A submission is a large argument for a task; Dask warns of repeated data.
                with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GiB"}):
                    future = client.submit(
                        _grade_task, plugin, version, t.path.name, raw, hashlib.sha256(raw).hexdigest(),
                        key=f"coursekit-grade-{t.key}-{uuid.uuid4().hex[:8]}", pure=False,
                        resources=resources)
                running[future] = t
                results.add(future)
            if not results.has_ready():
                time.sleep(POLL_S)
                continue
            future = next(results)
            t = running.pop(future)
            try:
                text = future.result()
            except Exception as exc:  # noqa: BLE001 - the task failed: KilledWorker, WorkerRefused...
                errors[t.key] = _failure(exc)
            else:
                try:
                    report = decode(text)
                except ReportError as exc:  # the codec's own words, never the report's
                    errors[t.key] = (f"the worker's report is malformed ({_one_line(exc)}); "
                                     f"it is retried on the next run")
                else:
                    if report.status == "error":  # the worker's sandbox failed: not a grade
                        errors[t.key] = f"{_one_line(report.message)}; it is retried on the next run"
                    else:
                        grade._write_atomic(t.report_path, encode(report))
            future.release()  # the scheduler forgets the task and its bytes
            bar.update(1)
    return errors
