"""Layer: a memory cgroup of its own for each job, where the machine lets us make one.

Attack it stops: memory held where no process's resident set shows it. A cell wrote 16
memfd files of 240 MB, kept them open without mapping them and slept: 3.84 GB against a
3072 MB limit, in no process's RSS or PSS, so the supervisor's poll never stopped it (as
root and as an ordinary user). Files in the job's tmpfs mounts (/tmp, /job, /dev/shm)
were free in the same way. The kernel charges every page a job brings in (anonymous,
file cache, shmem, memfd, tmpfs) to the memory cgroup of the process that brought it in,
reclaims what it can at the cgroup's limit, and OOM-kills inside that cgroup only.

The supervisor makes one cgroup per job start (`JobCgroup`) under its own: v1's memory
controller (root), or a delegated v2 subtree (our folder writable, `memory` enabled for
children). The job's leader joins it before it forks the job's init, so everything of
the job is inside; the supervisor checks that it did, reads the cgroup's OOM kills
(v1 `memory.oom_control`, v2 `memory.events`) as "out of memory", and removes it after.
Where no cgroup can be made (Docker's read-only cgroupfs, no root, no delegation)
`find` says why, and the supervisor counts held memory itself (limits.held_mb).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass

PREFIX = "coursekit-job-"


@dataclass(frozen=True)
class Hierarchy:
    """Where job cgroups are made: the parent folder and the cgroup version."""

    version: int  # 1 or 2
    folder: str

    @property
    def name(self) -> str:
        return f"cgroup v{self.version}"


def _mounts(mountinfo: str) -> list[tuple[str, str, str, str]]:
    """(mount root, mount point, fstype, super options) of each cgroup mount."""
    found = []
    try:
        with open(mountinfo) as f:
            lines = f.read(1 << 20).splitlines()
    except OSError:
        return []
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        found.append((fields[3], fields[4].replace("\\040", " "), tail[0], tail[2]))
    return found


def _own(proc_cgroup: str) -> dict[str, str]:
    """This process's cgroup path per hierarchy: "memory" (v1) and "" (v2)."""
    paths = {}
    try:
        with open(proc_cgroup) as f:
            lines = f.read(1 << 16).splitlines()
    except OSError:
        return {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            paths[""] = parts[2]
        elif "memory" in parts[1].split(","):
            paths["memory"] = parts[2]
    return paths


def _under(point: str, root: str, path: str) -> str | None:
    """The folder of cgroup `path` in a mount of `root` at `point` (None: not in it)."""
    if root != "/":
        if path != root and not path.startswith(root.rstrip("/") + "/"):
            return None
        path = path[len(root):]
    parts = [p for p in path.split("/") if p]
    if ".." in parts:
        return None
    return os.path.join(point, *parts)


def _candidates(proc_cgroup: str, mountinfo: str) -> list[Hierarchy]:
    own = _own(proc_cgroup)
    out = []
    for root, point, fstype, options in _mounts(mountinfo):
        if fstype == "cgroup" and "memory" in options.split(",") and "memory" in own:
            folder = _under(point, root, own["memory"])
            if folder:
                out.append(Hierarchy(1, folder))
        elif fstype == "cgroup2" and "" in own:
            folder = _under(point, root, own[""])
            if folder:
                out.append(Hierarchy(2, folder))
    return out


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _v2_ready(folder: str) -> str:
    """"" when children of `folder` get the memory controller, else why not."""
    try:
        with open(os.path.join(folder, "cgroup.controllers")) as f:
            if "memory" not in f.read().split():
                return "memory is not delegated to our cgroup v2 folder"
        with open(os.path.join(folder, "cgroup.subtree_control")) as f:
            if "memory" in f.read().split():
                return ""
        _write(os.path.join(folder, "cgroup.subtree_control"), "+memory")
    except OSError as exc:  # EBUSY: our folder has processes (cgroup v2's no-internal-process rule)
        return f"cannot enable memory for our cgroup v2 folder's children ({exc.strerror})"
    return ""


def find(refused: bool = False, proc_cgroup: str = "/proc/self/cgroup",
         mountinfo: str = "/proc/self/mountinfo") -> tuple[Hierarchy | None, str]:
    """Where this process may make job memory cgroups, or (None, why not). Probed by
    making and removing one: only the kernel's answer counts, never a guess."""
    if refused:
        return None, "refused by COURSEKIT_REFUSE"
    reasons = []
    for hierarchy in _candidates(proc_cgroup, mountinfo):
        if hierarchy.version == 2:
            why = _v2_ready(hierarchy.folder)
            if why:
                reasons.append(why)
                continue
        probe = JobCgroup(hierarchy, 64)
        try:
            probe.create()
        except OSError as exc:
            reasons.append(f"{hierarchy.name}: {exc.strerror or exc}")
            continue
        probe.destroy()
        return hierarchy, ""
    return None, "; ".join(reasons) or "no cgroup memory controller is mounted"


class JobCgroup:
    """One job start's memory cgroup."""

    def __init__(self, hierarchy: Hierarchy, limit_mb: int) -> None:
        self.hierarchy = hierarchy
        self.limit = limit_mb << 20
        self.folder = os.path.join(hierarchy.folder, PREFIX + uuid.uuid4().hex[:12])

    @property
    def procs(self) -> str:
        """The file a process writes its pid ("0": itself) into to join."""
        return os.path.join(self.folder, "cgroup.procs")

    def create(self) -> None:
        """Make the cgroup with the job's limit, no swap beyond it (raises OSError)."""
        os.mkdir(self.folder, 0o755)
        try:
            if self.hierarchy.version == 1:
                _write(os.path.join(self.folder, "memory.limit_in_bytes"), str(self.limit))
                memsw = os.path.join(self.folder, "memory.memsw.limit_in_bytes")
                if os.path.exists(memsw):  # where there is swap, none of it beyond the limit
                    _write(memsw, str(self.limit))
            else:
                _write(os.path.join(self.folder, "memory.max"), str(self.limit))
                for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                    if os.path.exists(os.path.join(self.folder, name)):
                        _write(os.path.join(self.folder, name), value)
        except OSError:
            self.destroy()
            raise

    def pids(self) -> list[int]:
        """The processes in the cgroup (empty when it cannot be read)."""
        try:
            with open(self.procs) as f:
                return [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            return []

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer ended in this cgroup."""
        name = "memory.oom_control" if self.hierarchy.version == 1 else "memory.events"
        try:
            with open(os.path.join(self.folder, name)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def destroy(self) -> None:
        """Kill whatever is left in the cgroup and remove it (errors ignored: a cgroup
        that cannot go is empty and costs nothing)."""
        for _ in range(50):
            pids = self.pids()
            for pid in pids:
                if pid <= 0:  # not visible in our PID namespace: kill(0) would be our group
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.rmdir(self.folder)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)  # dying processes still listed: EBUSY until they are gone
