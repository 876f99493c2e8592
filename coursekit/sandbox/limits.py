"""Layer: resource limits, and how the supervisor measures and ends a job.

Inside the job (`apply`): file size, core dumps, open files, processes (when the job has
a uid of its own) and an address-space cap relative to what the fork inherited. Outside
(`job_pids`, `memory_mb`, `kill`): the supervisor finds the job's processes by its PID
namespace (or, without one, by its uid or session), counts their memory as PSS — shared
pages split between the processes that share them, so 300 idle forks of one process
cost what they really cost — and kills them all.

A process's PSS (`/proc/PID/smaps_rollup`) is readable only to whom may ptrace-read it:
in a Docker container root lacks CAP_SYS_PTRACE, so before, the job's PSS read as 0 there
and memory over the limit was never stopped. Now the supervisor opens it with the job's
own filesystem uid and gid (the job's init makes itself dumpable for this), and a process
whose PSS still cannot be read counts with its whole resident set: never as nothing.
"""

from __future__ import annotations

import os
import resource
import signal
import time

NPROC = 64  # processes of one job: DataLoader workers and the like, not a fork bomb


def apply(memory_mb: int, own_uid: bool, address_cap: bool = True) -> None:
    """Set the job's rlimits (call in the job's init, before student code); without
    `address_cap` the address space is left unbounded (CUDA maps far more than it uses)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 20, 256 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    if own_uid:  # counted per uid: only safe where the uid is the job's alone
        resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, NPROC))
    if not address_cap:
        return
    with open("/proc/self/statm") as f:  # what the fork inherited, plus the limit
        inherited = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = inherited + ((memory_mb + 512) << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def job_pids(init: int, pid_ns: str | None, uid: int | None, sid: int | None) -> list[int]:
    """The job's processes: those in its PID namespace, else of its uid or session."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        if pid_ns is not None:
            if _ns(entry) == pid_ns:
                pids.append(int(entry))
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            owner = os.stat(f"/proc/{entry}").st_uid
        except (OSError, IndexError):
            continue
        if int(entry) == init or (uid is not None and owner == uid) or int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
    return total / 2**20


def _owner(pid: int) -> tuple[int, int] | None:
    """The (uid, gid) a process runs as, from its world-readable status."""
    uid = gid = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])
                elif line.startswith("Gid:"):
                    gid = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return (uid, gid) if uid is not None and gid is not None else None


def _open_rollup(pid: int) -> "object":
    """Open `/proc/PID/smaps_rollup`; where that is refused and this process may change
    its filesystem ids (root, even without CAP_SYS_PTRACE), open it as the process's own
    uid and gid, which the ptrace check lets read a dumpable process of that uid."""
    path = f"/proc/{pid}/smaps_rollup"
    try:
        return open(path)
    except PermissionError:
        owner = _owner(pid) if os.geteuid() == 0 else None
        if owner is None:
            raise
    from coursekit.sandbox import _libc

    old_uid, old_gid = _libc.setfsids(*owner)
    try:
        return open(path)
    finally:
        _libc.setfsids(old_uid, old_gid)


def _pss_kb(pid: int) -> int | None:
    """A process's PSS in KiB (0 when it is gone), None when it cannot be read."""
    try:
        with _open_rollup(pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    except (OSError, ValueError, IndexError):
        return None
    return 0


def _pss_mb(pids: list[int]) -> float:
    total_mb = 0.0
    for pid in pids:
        kb = _pss_kb(pid)
        total_mb += _rss_mb([pid]) if kb is None else kb / 1024  # unreadable: its whole RSS
    return total_mb


def memory_mb(pids: list[int], limit_mb: float) -> float:
    """The processes' memory in MiB: their proportional set size (PSS), read only when the
    quick resident-set sum (which counts shared pages once per process, so is never lower)
    is over `limit_mb` — PSS costs ~10 ms a process to read."""
    rss = _rss_mb(pids)
    return rss if rss <= limit_mb else _pss_mb(pids)


def kill(pids: list[int]) -> None:
    """SIGKILL each pid (gone or not ours: ignored)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def kill_uid(uid: int) -> None:
    """Kill every process of `uid` (root only): a helper that takes the uid and calls
    kill(-1), which reaches all of them at once, until none is left. Used where there is
    no PID namespace to end."""
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            try:
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)  # every process of this uid but the caller
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        if not _owned_by(uid):
            return
        time.sleep(0.01)


def _owned_by(uid: int) -> bool:
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid:
                return True
        except OSError:
            continue
    return False
