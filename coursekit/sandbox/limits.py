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

Memory outside every resident set (`held_mb`): memfd files written and kept open without
being mapped, and files in the job's tmpfs mounts, are in no process's PSS (3.84 GB of
memfd held against a 3072 MB limit went unseen). Where the job has no memory cgroup of
its own (memcg.py), the supervisor adds them: the allocated size of each file on a
memory filesystem that a job process holds open (each file once), and the used size of
the job's /tmp, /job and /dev/shm.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import stat
import time
from typing import Iterator

NPROC = 64  # processes of one job: DataLoader workers and the like, not a fork bomb
NOFILE = 1024  # open files of one job process
# filesystems whose files are memory: tmpfs (and memfd, shm_open, SysV shm), ramfs, hugetlbfs
MEMORY_FS = {0x01021994, 0x858458F6, 0x958458F6}
JOB_MOUNTS = ("tmp", "job", "dev/shm")  # the job's own tmpfs mounts (namespaces.py)


def apply(memory_mb: int, own_uid: bool, address_cap: bool = True) -> None:
    """Set the job's rlimits (call in the job's init, before student code); without
    `address_cap` the address space is left unbounded (CUDA maps far more than it uses)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 20, 256 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
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


@contextlib.contextmanager
def _as_owner(pid: int) -> Iterator[None]:
    """Within: this thread's filesystem uid and gid are those of process `pid` (where this
    process may change them: root, even without CAP_SYS_PTRACE), which the ptrace check
    of /proc/PID/... lets read a dumpable process of that uid. Elsewhere: unchanged."""
    owner = _owner(pid) if os.geteuid() == 0 else None
    if owner is None:
        yield
        return
    from coursekit.sandbox import _libc

    old_uid, old_gid = _libc.setfsids(*owner)
    try:
        yield
    finally:
        _libc.setfsids(old_uid, old_gid)


def _open_rollup(pid: int) -> "object":
    """Open `/proc/PID/smaps_rollup`, as the process's own uid and gid where it is refused."""
    path = f"/proc/{pid}/smaps_rollup"
    try:
        return open(path)
    except PermissionError:
        if os.geteuid() != 0 or _owner(pid) is None:
            raise
    with _as_owner(pid):
        return open(path)


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


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


_libc_fs = ctypes.CDLL(None, use_errno=True)


def _fs_type(fd: int) -> int | None:
    """The filesystem magic of an open file (fstatfs(2)); None when it cannot be read."""
    buf = _Statfs()
    return None if _libc_fs.fstatfs(fd, ctypes.byref(buf)) != 0 else buf.f_type


def _job_mount_use(init: int) -> tuple[int, set[int]]:
    """Bytes used in the job's own tmpfs mounts, and their devices. Each path component
    is opened O_NOFOLLOW below the job's root (/proc/INIT/root, the kernel's link): no
    link the job made is ever followed."""
    used, devices = 0, set()
    try:
        root = os.open(f"/proc/{init}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return 0, set()
    try:
        for mount in JOB_MOUNTS:
            fd = os.dup(root)
            try:
                for part in mount.split("/"):
                    nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                    os.close(fd)
                    fd = nxt
                if _fs_type(fd) in MEMORY_FS:
                    st, vfs = os.fstat(fd), os.fstatvfs(fd)
                    used += (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
                    devices.add(st.st_dev)
            except OSError:
                pass
            finally:
                os.close(fd)
    finally:
        os.close(root)
    return used, devices


def _held_files(pid: int, skip_devices: set[int], seen: set[tuple[int, int]]) -> int:
    """Bytes allocated to files on a memory filesystem that `pid` holds open, each file
    counted once over all calls sharing `seen`; files on `skip_devices` are left out."""
    total = 0
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for name in names[:NOFILE + 64]:
        path = f"/proc/{pid}/fd/{name}"  # a magic link the kernel made: safe to follow
        try:  # one open, then fstat and fstatfs of that file: the job cannot swap it between
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            if not stat.S_ISREG(st.st_mode) or key in seen or st.st_dev in skip_devices:
                continue
            seen.add(key)
            if _fs_type(fd) in MEMORY_FS:
                total += st.st_blocks * 512
        except OSError:
            continue
        finally:
            os.close(fd)
    return total


def held_mb(pids: list[int], init: int | None) -> float:
    """Memory the job holds outside every resident set, in MiB: files on a memory
    filesystem its processes hold open (memfd, shm_open, deleted tmpfs files) and, given
    the job's `init` (its own mount namespace, set up), its tmpfs mounts' use."""
    used, devices = 0, set()
    if init is not None:
        with _as_owner(init):
            used, devices = _job_mount_use(init)
    seen: set[tuple[int, int]] = set()
    for pid in pids[:4 * NPROC]:
        with _as_owner(pid):
            used += _held_files(pid, devices, seen)
    return used / 2**20


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
