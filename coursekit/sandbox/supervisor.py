"""The trusted side of the sandbox: start the zygote, run jobs, keep the clock, read the
channel, and survive whatever the job does.

The supervisor never reads a file the job could write. Everything it learns comes from
two places: the job's channel (a pipe, parsed by `channel.FrameReader`, strictly and
within a byte budget) and the zygote's control messages (the zygote runs no student
code). It measures time itself: a cell or call is timed from the moment the job
announced it, and a job may only move forward through the cells and calls it was given,
so repeating a progress message never buys time. Memory is the PSS of the job's
processes, plus every other form where the job runs in a memory cgroup of its own
(memcg.py: the kernel's OOM kills there are "out of memory"), or else plus the memfd,
shmem and tmpfs files it holds (limits.held_mb). A job that runs over, crashes or
breaks the protocol is killed and restarted past the cell or call that failed, in a
fresh sandbox; `run_job` always returns.

Its size (~510 lines): the other end of the protocol (zygote.py), one job's life read
top to bottom; the channel, limits and memory accounting are modules of their own.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from coursekit.sandbox import cgroup
from coursekit.sandbox import gpu as job_gpu
from coursekit.sandbox import limits as job_limits
from coursekit.sandbox import memcg
from coursekit.sandbox import uids
from coursekit.sandbox.channel import ChannelError, Frame, FrameReader, MAX_JOB_BYTES
from coursekit import ENGINE_ROOT  # the zygote imports this same engine
from coursekit.sandbox.zygote import SETUP_FAILED

LEVELS = ("namespaces", "landlock", "process")  # strongest first
POLL_S = 0.05
MEMORY_EVERY_S = 0.25
START_TIMEOUT_S = 300  # the zygote imports torch: slow on a cold disk


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the student's code): the zygote died or could not
    set up a job."""


class IsolationError(RuntimeError):
    """The machine allows less isolation than required."""


@dataclass
class Limits:
    """Per-submission limits: the whole job, one cell, one call, one long call (a lab's
    `Call.long`, e.g. a training check), resident memory, GPU memory. A course sets its
    own in course_config.py; these are the sandbox's when it is used on its own (tests)."""

    total_s: float = 240
    cell_s: float = 60
    call_s: float = 20
    long_call_s: float = 120
    memory_mb: int = 3072
    gpu_memory_mb: int = 4096
    max_restarts: int = 6


@dataclass(frozen=True)
class Policy:
    """How a machine's resources are shared: what one grader needs beside its job, the least
    a job may be given, and how many sandboxes share one GPU (course_config.py sets them)."""

    grader_memory_mb: int = 1100
    min_job_memory_mb: int = 512
    sandboxes_per_gpu: int = 4


@dataclass
class JobOutcome:
    """What happened to the job: cells and calls that failed at the process level."""

    skipped_cells: dict[int, str] = field(default_factory=dict)  # cell index -> reason
    failed_calls: dict[str, str] = field(default_factory=dict)  # call id -> reason
    timed_out: bool = False  # the whole submission ran out of time
    restarts: int = 0


@dataclass
class JobResult:
    """The outcome plus what the job claimed: arrays per call, or an error kind per call."""

    outcome: JobOutcome
    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # (frame kind, cell index or call id, when the supervisor read it): where the time went
    timeline: list[tuple[str, Any, float]] = field(default_factory=list)


def level_rank(level: str) -> int:
    """0 for the strongest level; higher is weaker."""
    return LEVELS.index(level)


def refused_layers() -> list[str]:
    """Layers to treat as refused by the kernel (COURSEKIT_REFUSE=namespaces,landlock,...),
    to test the fallbacks on a machine that allows them all."""
    return [x for x in os.environ.get("COURSEKIT_REFUSE", "").replace(" ", "").split(",") if x]


_AUTO: Any = object()  # the GPU slot comes from the course's device setting


class Sandbox:
    """One warm zygote and the jobs it runs, one at a time.

    `device` ("auto", "cpu", "cuda") and `gpu` (the GPU slot; default: the one this
    sandbox's `slot` gets on this machine) decide where the job's device calls run (the
    lab's `Call.device`); `gpu_memory` (pids -> MB) reads the job's GPU memory, by default
    through NVML. After `start`, `device` is where they run and `gpu_note` why a GPU that
    was there is not used. `job_module` (the lab's folder and the module the job imports)
    and `preload` are imported in the zygote, before any job.
    """

    def __init__(self, inputs: dict[str, np.ndarray], slot: int = 0,
                 memory_mb: int = Limits.memory_mb, require: str | None = None,
                 preload: list[str] | None = None, device: str = "auto",
                 gpu: job_gpu.GpuSlot | None = _AUTO, gpu_number: int | None = None,
                 gpu_memory: job_gpu.GpuMemory | None = None, sandboxes: int = 1,
                 job_module: tuple[str, str] | None = None, policy: Policy = Policy()) -> None:
        self.inputs = inputs
        self.slot = slot
        self.wanted_memory_mb = memory_mb
        self.memory_mb = memory_mb  # after `start`: what a job may use in this container
        self.sandboxes = sandboxes  # how many graders share this machine's (container's) memory
        self.require = require
        self.preload = list(preload or [])
        # the lab's module the job imports (its folder, its name): loaded in the zygote
        self.job_module = job_module
        self.policy = policy
        self.setting = job_gpu.check_setting(device)
        # which GPU: by `gpu_number` (a Dask worker's pick), else by the slot (--jobs N: 0..N-1)
        number = slot if gpu_number is None else gpu_number
        self.gpu = job_gpu.slot_for(number, self.setting, policy.sandboxes_per_gpu) if gpu is _AUTO else gpu
        if self.setting == "cuda" and self.gpu is None:
            raise job_gpu.DeviceError(
                f"the device setting is 'cuda', but sandbox {slot} gets no GPU "
                f"(this grader may use {len(job_gpu.visible_minors())} and each takes at most "
                f"{policy.sandboxes_per_gpu} sandboxes): grade with fewer jobs")
        self._gpu_memory = gpu_memory
        self.device = "cpu"
        self.gpu_note = ""
        self.layers: list[str] = []
        self.level = ""
        # how memory in every form is counted: "cgroup v1"/"cgroup v2", or "accounting (why)"
        self.memory_guard = ""
        self._memcg: memcg.Hierarchy | None = None
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._claim: uids.UidClaim | None = None
        self._root: str | None = None
        self._buf = b""

    # --- the zygote ---------------------------------------------------------------

    def start(self, probe_only: bool = False) -> None:
        """Start the zygote and learn which layers work; raise IsolationError when the
        level is below `require`."""
        self.close()
        # Before anything big starts: a container too small for the grader says so in one
        # line instead of being killed mid-grade (cgroup.py)
        self.memory_mb, problem = cgroup.job_memory_mb(self.wanted_memory_mb, self.policy.grader_memory_mb,
                                                       self.policy.min_job_memory_mb, self.sandboxes)
        if problem:
            raise SandboxError(problem)
        self._claim = uids.claim(self.slot)
        self._root = tempfile.mkdtemp(prefix="coursekit-sandbox-")
        os.chmod(self._root, 0o711)  # job folders inside are the sandbox uid's own (fallback only)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": self._root,
               "PYTHONPATH": str(ENGINE_ROOT),
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": os.path.join(self._root, "mpl"), "OMP_NUM_THREADS": "1",
               "CUDA_VISIBLE_DEVICES": ""}
        if os.environ.get("LD_LIBRARY_PATH"):  # GPU images find the driver's libcuda there
            env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
        with open(os.path.join(self._root, "zygote.log"), "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "coursekit.sandbox.zygote", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], env=env, cwd="/", stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True)
        theirs.close()
        self._sock, self._buf = ours, b""
        settings = {"uid": self._claim.uid, "refuse": refused_layers(), "memory_mb": self.memory_mb,
                    "preload": self.preload, "job_root": self._root, "probe_only": probe_only,
                    "job_module": list(self.job_module) if self.job_module else None,
                    "gpu": self.gpu.as_json() if self.gpu and not probe_only else None,
                    "debug": bool(os.environ.get("COURSEKIT_SANDBOX_DEBUG"))}
        blob = json.dumps(settings).encode()
        buf = io.BytesIO()
        np.savez(buf, **self.inputs)
        data = buf.getvalue()
        try:
            ours.sendall(len(blob).to_bytes(8, "big") + blob + len(data).to_bytes(8, "big") + data)
            reply = self._recv(START_TIMEOUT_S)
        except OSError:
            reply = None
        if not reply or not isinstance(reply.get("layers"), list):
            log_tail = Path(self._root, "zygote.log").read_bytes()[-2000:].decode("utf-8", "replace")
            self.close()
            raise SandboxError(f"the sandbox did not start: {log_tail.strip()[-500:]}")
        self.layers = [str(x) for x in reply["layers"]]
        self.level = str(reply["level"])
        self._memcg, why = memcg.find(refused="memcg" in refused_layers())
        self.memory_guard = self._memcg.name if self._memcg else f"accounting ({why})"
        if self._memcg:
            self.layers.append("memcg")
        self.device = "cuda" if reply.get("device") == "cuda" else "cpu"
        self.gpu_note = str(reply.get("gpu_note") or "")[:300]
        if reply.get("problem"):
            self.close()
            raise SandboxError(str(reply["problem"]))
        if self.setting == "cuda" and self.device != "cuda" and not probe_only:
            self.close()
            raise job_gpu.DeviceError(f"the device setting is 'cuda', but the GPU "
                                      f"does not work here: {self.gpu_note}")
        if self.device == "cuda" and self._gpu_memory is None:
            nvml = job_gpu.NvmlMemory(self.gpu)
            self._gpu_memory = nvml.used_mb if nvml.available else None
        if self.require and level_rank(self.level) > level_rank(self.require):
            self.close()
            raise IsolationError(f"isolation level '{self.level}' is below the required "
                                 f"'{self.require}' (layers that work here: "
                                 f"{', '.join(self.layers) or 'none'}; see docs/security.md)")

    def close(self) -> None:
        """Stop the zygote (and with it any job) and free the uid."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.kill()
            except OSError:
                pass
            self._proc.wait()
            self._proc = None
        if self._claim is not None:
            self._claim.release()
            self._claim = None
        if self._root is not None:
            if os.environ.get("COURSEKIT_SANDBOX_DEBUG"):
                sys.stderr.write(Path(self._root, "zygote.log").read_text(errors="replace")[-5000:])
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _recv(self, timeout: float) -> dict[str, Any] | None:
        """The zygote's next JSON line, or None on timeout or when it has gone."""
        end = time.monotonic() + timeout
        assert self._sock is not None
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._sock], [], [], left)[0]:
                return None
            data = self._sock.recv(1 << 16)
            if not data:
                return None
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            msg = json.loads(line)
        except ValueError:
            return None
        return msg if isinstance(msg, dict) else None

    def _send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        assert self._sock is not None
        data = json.dumps(msg).encode() + b"\n"
        if fds:
            socket.send_fds(self._sock, [data[:1]], fds)
            data = data[1:]
        self._sock.sendall(data)

    # --- jobs ---------------------------------------------------------------------

    def run_job(self, job: dict[str, Any], limits: Limits, group: Callable[[str], str]) -> JobResult:
        """Run `job` (cells, calls, the lab's job module) under `limits`; always returns,
        except for a failure of the sandbox itself (`SandboxError`).

        `group(call_id)` names the function a call exercises: a function that hangs or
        crashes on one hidden input is not retried on the others.
        """
        if self._proc is None or self._proc.poll() is not None:
            self.start()
        # never more than this container leaves a job (`start` sized it)
        limits = dataclasses.replace(limits, memory_mb=min(limits.memory_mb, self.memory_mb))
        result = JobResult(JobOutcome())
        outcome = result.outcome
        deadline = time.monotonic() + limits.total_s
        budget = [MAX_JOB_BYTES]
        while True:
            done_calls = set(result.outputs) | set(result.errors) | set(outcome.failed_calls)
            run = {**job, "skip_cells": sorted(outcome.skipped_cells), "skip_calls": sorted(done_calls),
                   "memory_mb": limits.memory_mb, "gpu_memory_mb": limits.gpu_memory_mb}
            # where the device calls run is this sandbox's to say, whatever the job dict says
            run["runtime"] = {"device": self.device if job.get("device_calls") else "cpu",
                              "gpu_memory_mb": limits.gpu_memory_mb}
            state = _Progress(run)
            reason, status = self._run_once(run, limits, deadline, state, result, budget)
            if state.finished or outcome.timed_out:
                return result
            if status == SETUP_FAILED and not state.seen_any:
                raise SandboxError("the sandbox could not set up the job")
            if not reason:
                reason = "crashed the grading process" if status != 0 else "stopped grading"
            if reason == "timed out" and time.monotonic() > deadline:
                outcome.timed_out = True
            kind, item = state.current
            if kind == "call":
                target = group(item)
                for call in run["calls"]:
                    if group(call) == target and call not in result.outputs and call not in result.errors:
                        outcome.failed_calls.setdefault(call, reason)
            elif kind == "cell":
                outcome.skipped_cells[item] = reason
            else:
                outcome.failed_calls["*"] = reason
                return result
            outcome.restarts += 1
            if outcome.restarts > limits.max_restarts or outcome.timed_out:
                outcome.failed_calls["*"] = reason
                return result

    def _run_once(self, run: dict[str, Any], limits: Limits, deadline: float, state: "_Progress",
                  result: JobResult, budget: list[int]) -> tuple[str, int]:
        """One start of the job; returns (why it was stopped or "", exit status)."""
        cg = self._job_cgroup(limits.memory_mb)
        try:
            return self._run_in(cg, run, limits, deadline, state, result, budget)
        finally:
            if cg is not None:
                cg.destroy()

    def _job_cgroup(self, memory_mb: int) -> memcg.JobCgroup | None:
        """A fresh memory cgroup for one job start, or None (then: accounting)."""
        if self._memcg is None:
            return None
        cg = memcg.JobCgroup(self._memcg, memory_mb)
        try:
            cg.create()
        except OSError:
            return None
        return cg

    def _run_in(self, cg: memcg.JobCgroup | None, run: dict[str, Any], limits: Limits, deadline: float,
                state: "_Progress", result: JobResult, budget: list[int]) -> tuple[str, int]:
        r, w = os.pipe()
        try:
            self._send({"job": {**run, "memcg": cg.procs if cg else None}}, [w])
        except OSError:
            os.close(r)
            os.close(w)
            self.close()
            raise SandboxError("the sandbox went away") from None
        os.close(w)
        started = self._recv(30)
        if not started or not isinstance(started.get("init"), int):
            os.close(r)
            self.close()
            raise SandboxError("the sandbox did not start the job")
        init = started["init"]
        if cg is not None and init not in cg.pids():  # the leader could not join it: count ourselves
            cg = None
        pid_ns = None
        if "namespaces" in self.layers:
            pid_ns = job_limits._ns(init)
        uid = started.get("uid") if isinstance(started.get("uid"), int) else None
        reader = FrameReader(budget[0])
        reason, exited, next_memory, eof = "", None, 0.0, False
        try:
            while exited is None:
                now = time.monotonic()
                if not reason:
                    if now > deadline:
                        reason = "timed out"
                    elif now - state.since > state.limit(limits):
                        reason = "timed out"
                    elif now >= next_memory:
                        next_memory = now + MEMORY_EVERY_S
                        pids = job_limits.job_pids(init, pid_ns, uid, init)
                        if self._over_memory(cg, pids, init if pid_ns and state.seen_any else None,
                                             limits.memory_mb):
                            reason = "out of memory"
                        elif self._gpu_memory and self._gpu_memory(pids) > limits.gpu_memory_mb:
                            reason = f"used more than {limits.gpu_memory_mb} MB of GPU memory"
                    if reason:
                        self._send({"kill": True})
                waiting = [self._sock] + ([] if eof else [r])
                ready = select.select(waiting, [], [], POLL_S)[0]
                if r in ready:
                    data = os.read(r, 1 << 20)
                    eof = not data
                    if data and not reason:
                        try:
                            for frame in reader.feed(data):
                                state.take(frame, result)
                        except ChannelError:
                            reason = "sent malformed results to the grader"
                            self._send({"kill": True})
                if self._sock in ready:
                    msg = self._recv(0.5)
                    if msg is None:
                        self.close()
                        raise SandboxError("the sandbox went away")
                    if "exited" in msg:
                        exited = msg["exited"] if isinstance(msg["exited"], int) else -1
            if not reason and cg is not None and cg.oom_kills():  # the kernel ended it at the limit
                reason = "out of memory"
            if not reason:  # frames written just before it ended
                while select.select([r], [], [], 0.2)[0]:
                    data = os.read(r, 1 << 20)
                    if not data:
                        break
                    try:
                        for frame in reader.feed(data):
                            state.take(frame, result)
                    except ChannelError:
                        reason = "sent malformed results to the grader"
                        break
        finally:
            os.close(r)
            budget[0] = reader.budget
        return reason, exited

    @staticmethod
    def _over_memory(cg: memcg.JobCgroup | None, pids: list[int], mounts_of: int | None,
                     limit_mb: int) -> bool:
        """Over the limit: an OOM kill in the job's cgroup, or PSS plus (without a cgroup)
        the memory it holds outside every resident set. `mounts_of`: the job's init once
        its own tmpfs mounts are up (None: not yet, or no mount namespace)."""
        if cg is not None:
            if cg.oom_kills():
                return True
            return job_limits.memory_mb(pids, limit_mb) > limit_mb
        held = job_limits.held_mb(pids, mounts_of)
        return held + job_limits.memory_mb(pids, limit_mb - held) > limit_mb


class _Progress:
    """Where a job is: it may only move forward through the cells and calls it was given."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.cells = len(run["cells"])
        self.skip = set(run["skip_cells"])
        self.calls = [c for c in run["calls"] if c not in set(run["skip_calls"])]
        self.long = set(run.get("long_calls", ())) & set(self.calls)
        self.phase = "cells"
        self.last_cell = -1
        self.next_call = 0
        self.current: tuple[str, Any] = ("setup", None)
        self.since = time.monotonic()
        self.finished = False
        self.seen_any = False

    def limit(self, limits: Limits) -> float:
        kind, item = self.current
        if kind == "call":
            return limits.long_call_s if item in self.long else limits.call_s
        return limits.cell_s

    def _move(self, kind: str, item: Any) -> None:
        self.current, self.since = (kind, item), time.monotonic()

    def take(self, frame: Frame, result: JobResult) -> None:
        """Apply one frame; raise ChannelError for anything out of order."""
        self.seen_any = True
        kind, f = frame.kind, frame.fields
        result.timeline.append((kind, f.get("i", f.get("id")), time.monotonic()))
        if kind == "cell" and self.phase == "cells":
            i = f["i"]
            if not (self.last_cell < i < self.cells) or i in self.skip:
                raise ChannelError("a cell out of order")
            self.last_cell = i
            self._move("cell", i)
        elif kind == "cells_done" and self.phase == "cells":
            self.phase = "calls"
            self._move("between", None)
        elif kind == "call" and self.phase == "calls":
            if self.next_call >= len(self.calls) or f["id"] != self.calls[self.next_call]:
                raise ChannelError("a call out of order")
            self.next_call += 1
            self._move("call", f["id"])
        elif kind in ("error", "out") and self.current == ("call", f.get("id")):
            if kind == "error":
                result.errors[f["id"]] = f["kind"]
            else:
                result.outputs[f["id"]] = frame.arrays
            self._move("between", None)
        elif kind == "done" and self.phase == "calls" and self.current[0] != "call":
            self.phase, self.finished = "done", True
        else:
            raise ChannelError(f"an unexpected '{kind}' message")
