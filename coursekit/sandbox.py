"""Run the untrusted side of grading in a child process, under limits, and survive it.

The child is forked from the (warm) calling process, so torch is already imported. In
the child, before any student code runs: a new session, resource limits (processes,
file size, address space), and — when the grader runs as root —
an unprivileged user id of its own, so the student's code can neither read the
grader's files nor signal its processes. The supervisor watches the child's progress
events: a cell or call that runs past its time limit, a child over its memory limit, or
a child that dies (`os._exit`, a signal) is killed, and the job restarts from the
next cell or call, skipping the one that failed. Whatever happens, `run_job` returns.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import stat
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import course_config as cfg

SANDBOX_UID_BASE = 61000  # unprivileged uids for sandboxes, when running as root
UID_POOL = 256  # 61000..61255: one per sandbox running on this machine, across all graders
UID_LOCKS = Path(tempfile.gettempdir()) / "coursekit-uids"  # root's: a lock file per uid
POLL_S = 0.02
_HELD_LOCKS: set[int] = set()  # this process's uid-lock fds: the child closes its copies


@dataclass
class Limits:
    """Per-submission limits (defaults from course_config.py)."""

    total_s: float = cfg.TIME_LIMIT_S
    cell_s: float = cfg.CELL_TIME_LIMIT_S
    call_s: float = cfg.CALL_TIME_LIMIT_S
    training_s: float = cfg.TRAINING_TIME_LIMIT_S
    memory_mb: int = cfg.MEMORY_LIMIT_MB
    max_restarts: int = 6


@dataclass
class JobOutcome:
    """What happened to the child: cells and calls that failed at the process level."""

    skipped_cells: dict[int, str] = field(default_factory=dict)  # cell index -> reason
    failed_calls: dict[str, str] = field(default_factory=dict)  # call id -> reason
    timed_out: bool = False  # the whole submission ran out of time
    restarts: int = 0


def _reachable(path: Path) -> bool:
    """Whether any user may read `path` (a folder) and pass through every folder above it."""
    try:
        if not path.stat().st_mode & stat.S_IROTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])
    except OSError:
        return False


def sandbox_uid(slot: int) -> int | None:
    """The first sandbox uid to try for a job slot, or None where the child keeps the
    grader's uid (`claimed_uid` picks a free one from there).

    Dropping privileges needs root, and a Python installation that other users can read
    (a Python under a closed /root is not); otherwise the child only gets its own session
    and limits (see docs/security.md).
    """
    if os.geteuid() != 0:
        return None
    import torch

    needed = [Path(os.__file__).resolve().parent, Path(torch.__file__).resolve().parent.parent]
    return SANDBOX_UID_BASE + slot if all(_reachable(p) for p in needed) else None


@contextmanager
def claimed_uid(slot: int) -> Iterator[int | None]:
    """A sandbox uid that no other grader on this machine is using while we hold it.

    Two graders at once (two `coursekit grade` runs, nbgrader and otter, two courses)
    must not share a uid: the supervisor kills every process of its uid when a job ends.
    Each uid is claimed with an exclusive flock on its own file in a root-only folder.
    """
    first = sandbox_uid(slot)
    if first is None:
        yield None
        return
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    info = UID_LOCKS.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        raise RuntimeError(f"{UID_LOCKS} must be a folder only root can use")
    start = first - SANDBOX_UID_BASE
    for i in range(UID_POOL):
        uid = SANDBOX_UID_BASE + (start + i) % UID_POOL
        fd = os.open(UID_LOCKS / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _HELD_LOCKS.add(fd)
        try:
            yield uid
        finally:
            _HELD_LOCKS.discard(fd)
            os.close(fd)
        return
    raise RuntimeError(f"all {UID_POOL} sandbox uids are in use on this machine")


def _events(path: Path) -> list[dict]:
    """Parse the child's progress events strictly; malformed lines are ignored."""
    out = []
    try:
        text = path.read_text()[: 1 << 20]
    except OSError:
        return out
    for line in text.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
    return total / 2**20


def _processes(uid: int | None, sid: int) -> list[int]:
    """Processes of the sandbox: its uid (when we own one) or its session."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            status_uid = os.stat(f"/proc/{entry}").st_uid
        except (OSError, IndexError):
            continue
        if (uid is not None and status_uid == uid) or int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def _kill_all(uid: int | None, sid: int) -> None:
    for _ in range(3):
        pids = [p for p in _processes(uid, sid) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


def _child(job_dir: Path, uid: int | None, limits: Limits) -> None:
    """In the forked child: isolate, limit, then run the untrusted side. Never returns."""
    code = 0
    try:
        for fd in _HELD_LOCKS:  # student code must not be able to unlock (and share) its uid
            os.close(fd)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        out = os.open(job_dir / "stdout.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 20, 256 << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with open("/proc/self/statm") as f:  # what the fork inherited, plus the limit
            inherited = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = inherited + ((limits.memory_mb + 512) << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        if uid is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (256, 256))
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        _die_with_parent()
        os.chdir(job_dir)
        # No GPU for student code: scores must not depend on the grading machine, CUDA is
        # unusable after a fork anyway, and the memory limit cannot see GPU memory.
        # USER/LOGNAME: the sandbox uid has no passwd entry, and getpass.getuser() (torch's
        # cache paths, imported by torchvision.datasets) raises KeyError without them.
        os.environ.update({"MPLBACKEND": "Agg", "HOME": str(job_dir), "OMP_NUM_THREADS": "1",
                           "CUDA_VISIBLE_DEVICES": "", "USER": "student", "LOGNAME": "student"})
        from coursekit.student_side import run_child

        run_child(job_dir)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (set after setuid)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _prepare_dir(job_dir: Path, uid: int | None) -> None:
    if uid is not None:
        for path in [job_dir, *job_dir.iterdir()]:
            os.chown(path, uid, uid)
        job_dir.chmod(0o700)


def run_job(job_dir: Path, job: dict, limits: Limits, slot: int = 0) -> JobOutcome:
    """Run `job` (see `coursekit.student_side`) in `job_dir` under `limits`; always returns."""
    with claimed_uid(slot) as uid:
        return _run(job_dir, job, limits, uid)


def _run(job_dir: Path, job: dict, limits: Limits, uid: int | None) -> JobOutcome:
    outcome = JobOutcome()
    deadline = time.monotonic() + limits.total_s
    events_path = job_dir / "events.jsonl"
    while True:
        job = {**job, "skip_cells": sorted(outcome.skipped_cells),
               "skip_calls": sorted(outcome.failed_calls)}
        (job_dir / "job.json").write_text(json.dumps(job))
        events_path.unlink(missing_ok=True)
        _prepare_dir(job_dir, uid)
        pid = os.fork()
        if pid == 0:
            _child(job_dir, uid, limits)
        status, reason, seen, current_since = None, "", 0, time.monotonic()
        current: dict = {}
        polls = 0
        while status is None:
            polls += 1
            time.sleep(POLL_S)
            done, wstatus = os.waitpid(pid, os.WNOHANG)
            if done:
                status = wstatus
                break
            evs = _events(events_path)
            if len(evs) != seen:
                seen, current, current_since = len(evs), (evs[-1] if evs else {}), time.monotonic()
            now = time.monotonic()
            if "call" not in current:
                limit = limits.cell_s
            else:
                limit = limits.training_s if current.get("call") == "training" else limits.call_s
            if now > deadline:
                reason, outcome.timed_out = "timed out", True
            elif now - current_since > limit:
                reason = "timed out"
            elif polls % 10 == 0 and _rss_mb(_processes(uid, pid)) > limits.memory_mb:
                reason = "out of memory"
            if reason:
                _kill_all(uid, pid)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = -1
        _kill_all(uid, pid)  # anything the student left running
        evs = _events(events_path)
        finished = any(ev.get("call") == "done" for ev in evs)
        if finished or outcome.timed_out:
            return outcome
        # The child died or was stopped inside a cell or call: skip it and go again.
        last = evs[-1] if evs else {}
        if not reason:
            reason = "crashed the grading process" if status != 0 else "stopped grading"
        if isinstance(last.get("call"), str) and last["call"] in job["calls"]:
            # a function that hangs or crashes on one hidden input is not retried on the others
            target = _target(last["call"])
            for call in job["calls"]:
                if _target(call) == target and call not in outcome.failed_calls:
                    outcome.failed_calls[call] = reason
        elif isinstance(last.get("cell"), int):
            outcome.skipped_cells[last["cell"]] = reason
        else:
            outcome.timed_out = outcome.timed_out or reason == "timed out"
            outcome.failed_calls["*"] = reason
            return outcome
        outcome.restarts += 1
        if outcome.restarts > limits.max_restarts:
            outcome.failed_calls["*"] = reason
            return outcome


def _target(call_id: str) -> str:
    from coursekit.checks import CALLS_BY_ID

    call = CALLS_BY_ID.get(call_id)
    return call.target if call else call_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
