"""The Dask worker's side of `coursekit grade --cluster`: one warm grader per worker
process (`GraderPlugin`), and the task each worker runs (`grade_task`).

A task carries a submission's bytes, their sha256 and its file name. The worker checks
the bytes against their hash and the name against being a plain file name, writes the
bytes into a private temporary folder, grades them in its own sandbox exactly as a
local worker does, and returns the report encoded (`coursekit.report.encode`). A worker
whose code differs from the TA's (another grader version) refuses every task.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

from coursekit.batch.store import grader_version
from coursekit.report import encode

SLOTS = 64  # sandbox slots per machine; the uid claim skips a taken one anyway


class WorkerRefused(RuntimeError):
    """A worker would not grade a task: its bytes are damaged, its name is unsafe, the
    worker runs other code, or its sandbox is weaker than required."""


_VERSIONS: dict[str, str] = {}


def worker_version(assignment: str) -> str:
    """This process's grader version of `assignment`, computed once (the code it has
    loaded, its checkout's course_config.py and lab folder)."""
    if assignment not in _VERSIONS:
        from coursekit import course

        c = course.load(only=assignment)
        _VERSIONS[assignment] = grader_version(c.config_file, c.assignment(assignment).folder)
    return _VERSIONS[assignment]


def _check_name(name: object) -> str:
    """The submission's file name, which the grader's messages quote: one plain path
    component (a Unix file name cannot hold '/' or NUL; anything else is not one)."""
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name
            or len(os.fsencode(name)) > 255):
        raise WorkerRefused("the submission's file name is not a plain file name")
    return name


class GraderPlugin(WorkerPlugin):
    """One warm grader per Dask worker process, made on its first task, closed with the worker.

    Registered by `dask_executor.DaskExecutor` under a name that includes the required isolation
    level, so that batches asking the same thing share the warm grader. Tasks on one
    worker are graded one at a time (a worker started with more than one thread waits).
    """

    idempotent = True  # a second batch does not replace (and close) a warm grader

    def __init__(self, assignment: str, require: str | None = None) -> None:
        self.assignment = assignment
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
            from coursekit import course
            from coursekit.lab import DataError, LabError
            from coursekit.sandbox import IsolationError, SandboxError, gpu

            # The GPU: one of those this worker may use (dask-cuda or Slurm narrow them with
            # CUDA_VISIBLE_DEVICES), picked by its address so that workers spread over them.
            number = self._slot % max(1, len(gpu.visible_minors()))
            try:
                c = course.load(only=self.assignment)
                grader = c.grader(c.assignment(self.assignment), slot=self._slot, require=self.require,
                                  gpu_number=number)
            except (DataError, LabError, course.ConfigError, gpu.DeviceError) as exc:  # this machine's data, GPU, checkout
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
        if version != worker_version(self.assignment):
            raise WorkerRefused(f"this worker runs another version of coursekit, course_config.py or the lab "
                                f"({worker_version(self.assignment)}, the batch wants {version}): install the "
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


def grade_task(plugin: str, version: str, name: str, data: bytes, digest: str) -> str:
    """The task each worker runs: grade with this worker's warm grader."""
    from distributed import get_worker

    grader = get_worker().plugins.get(plugin)
    if not isinstance(grader, GraderPlugin):
        raise WorkerRefused("this worker has no coursekit grader")
    return grader.grade(version, name, data, digest)
