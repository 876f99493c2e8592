"""The memory the machine's container allows: read once, before grading starts.

Attack (or accident) it stops: a grader that is killed mid-grade. Gradescope runs the
autograder in a container of 768 MB by default, less than the grader and one job need
together; where the kernel's OOM killer picks the grader instead of the job, no
results.json is written and the student sees "Killed". The grader reads its container's
memory limit (cgroup v2 `memory.max`, or v1 `memory.limit_in_bytes`, of its own cgroup
and every ancestor: the smallest counts) and either sizes each job's memory to what is
left or refuses to start with one line that says what to set.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"
UNLIMITED = 1 << 60  # v1 writes "no limit" as a number near 2**63


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read(64).strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= UNLIMITED else value


def _own_paths(proc_cgroup: str) -> list[tuple[str, str]]:
    """(hierarchy folder, this process's path in it) for the v2 and v1 memory hierarchies."""
    found = []
    try:
        with open(proc_cgroup) as f:
            lines = f.read(1 << 16).splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            found.append((CGROUP_ROOT, path))  # the unified (v2) hierarchy
        elif "memory" in controllers.split(","):
            found.append((os.path.join(CGROUP_ROOT, "memory"), path))
    return found


def memory_limit_bytes(proc_cgroup: str = "/proc/self/cgroup") -> int | None:
    """The smallest memory limit over this process's cgroup and its ancestors, in bytes;
    None where there is none (or no cgroup filesystem to read it from)."""
    limits = []
    for root, path in _own_paths(proc_cgroup):
        parts = [p for p in path.split("/") if p and p != ".."]
        for depth in range(len(parts), -1, -1):
            folder = os.path.join(root, *parts[:depth])
            for name in ("memory.max", "memory.limit_in_bytes"):
                value = _read_int(os.path.join(folder, name))
                if value is not None:
                    limits.append(value)
    return min(limits) if limits else None


def job_memory_mb(wanted_mb: int, grader_mb: int, floor_mb: int, sandboxes: int = 1,
                  limit_bytes: int | None = None) -> tuple[int, str]:
    """Each job's memory limit in this container, and the problem that stops grading ("").

    `wanted_mb` is the course's limit, `grader_mb` what one grader needs beside its job
    (its own process and the sandbox's zygote), `floor_mb` the least a job may get (what
    a correct submission uses), `sandboxes` how many graders share the container.
    """
    if limit_bytes is None:
        limit_bytes = memory_limit_bytes()
    if limit_bytes is None:
        return wanted_mb, ""
    limit_mb = limit_bytes >> 20
    left = limit_mb // max(sandboxes, 1) - grader_mb
    if left >= floor_mb:
        return min(wanted_mb, left), ""
    need = (grader_mb + floor_mb) * max(sandboxes, 1)
    who = f" for {sandboxes} graders" if sandboxes > 1 else ""
    return 0, (f"this container allows {limit_mb} MB of memory (its cgroup's limit), but grading "
               f"needs at least {need} MB{who} (course_config.GRADER_MEMORY_MB {grader_mb} + "
               f"MIN_JOB_MEMORY_MB {floor_mb} each): give the autograder more memory (Gradescope: "
               f"the assignment's Settings, Autograder Settings) or grade with fewer jobs")
