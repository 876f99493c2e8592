"""A Gradescope-like container for the tests, made by the kernel's refusals.

Gradescope grades in a Docker container: root, but with Docker's default capability set
(no CAP_SYS_ADMIN) and Docker's default seccomp profile. There the kernel itself refuses
what the sandbox's `namespaces` level needs (unshare, mount, clone with namespace flags),
and the sandbox must fall back to what works. This harness makes that container on a
machine where we are fully privileged root, without our own COURSEKIT_REFUSE switch:

    python -m tests.container run --zip ZIP [--submission NB] --out DIR
           [--keep-caps] [--no-seccomp] [--env NAME=VALUE]... [--cwd DIR] [--root DIR] -- COMMAND...

1. new mount and PID namespaces (while still privileged); the harness is PID 1 of the
   container, reaps orphans, and ends every process of it when COMMAND ends (as
   `docker run` does); the network is the host's (as `--network host`);
2. Gradescope's layout on a tmpfs mounted over `/autograder` (a mount point made in the
   container; an empty `/autograder` folder is created on the host to mount over if
   there is none): `source/` the unzipped autograder zip, `submission/` the upload,
   `results/`, `submission_metadata.json`, and `run_autograder`: the zip's own, with its
   image's venv replaced by this project's virtual environment. A private tmpfs
   `/root` (the container's home) keeps jupyter's and matplotlib's files off the host;
   `/sys/fs/cgroup` and the mounts below it are read-only, as Docker mounts them.
   With `--root DIR` (an image's root folder, e.g. a debootstrap) the container runs
   there instead (chroot, with the kernel's /proc, /dev, /sys, the host's DNS and CA bundle) and
   `run_autograder` is the zip's own, unchanged: how tests/test_image.py runs setup.sh;
3. in the child that runs COMMAND, what runc does for Docker's defaults, in runc's order
   when no_new_privs is not asked for: load moby's default seccomp profile for x86_64
   (`MOBY_*` below; allow-list, EPERM for the rest, `clone` without namespace flags,
   `clone3` -> ENOSYS, every CAP_SYS_ADMIN-only call refused), then drop every capability
   but Docker's 14 from the bounding, permitted, effective, inheritable and ambient sets,
   then exec COMMAND as uid 0 with a clean environment (no COURSEKIT_REFUSE, ever);
4. when COMMAND has ended: the processes still in the container are listed in
   `DIR/leftovers.json`, then killed, and `/autograder/results/` is copied to `DIR/results/`.

`--keep-caps` / `--no-seccomp` leave out one of the two refusals (to show what each one
does, and that without both the sandbox gets its full level). `probe` (run as COMMAND)
writes what the kernel allows inside as JSON: capabilities, seccomp and no_new_privs
state, the errno of each namespace and mount call, and the sandbox's own probe (level).

Needs root with CAP_SYS_ADMIN on the host and x86_64 (moby's rules are per arch).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent  # the project's venv (python is a link into /usr/bin)
AG = "/autograder"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
CGROUPFS = "/sys/fs/cgroup"
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 1, 24, 47, 4

# --- Docker's defaults ------------------------------------------------------------------

# moby's default capability set (oci/caps/defaults.go, runc's default spec)
DOCKER_CAPS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
    "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29,
    "CAP_SETFCAP": 31,
}
DOCKER_CAP_MASK = sum(1 << n for n in DOCKER_CAPS.values())
CAP_SYS_ADMIN = 21

# moby's default seccomp profile (github.com/moby/profiles/seccomp default.json, as vendored
# in moby/moby b985e23, Aug 2026), for SCMP_ARCH_X86_64 (with its x86/x32 sub-arches),
# evaluated for a container with DOCKER_CAPS: default action ERRNO(EPERM); these calls
# allowed unconditionally ...
MOBY_ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
get_robust_list get_thread_area getcpu getcwd getdents getdents64 getegid getegid32 geteuid
geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
getrusage getsid getsockname getsockopt gettid gettimeofday getuid getuid32 getxattr
getxattrat inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel
io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup io_submit ioctl
ioprio_get ioprio_set ipc kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount listxattr
listxattrat llistxattr lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack
membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2
mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget
msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat open
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free
pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr
removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max
sched_get_priority_min sched_getaffinity sched_getattr sched_getparam sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_robust_list
set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid
setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd
signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64
statmount statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write
writev
ptrace process_vm_readv process_vm_writev
arch_prctl modify_ldt
""".split()  # the last two lines: "minKernel 4.8" and the amd64/x86 arch-only entries
# ... and these only with arguments: socket for any family but AF_ALG (38) and AF_VSOCK
# (40); personality(0, 8, 0x20000, 0x20008, 0xffffffff); clone when no namespace flag is
# set in its flags (mask 0x7E020000); clone3 answers ENOSYS (libc falls back to clone).
# Every CAP_SYS_ADMIN-only entry (mount, umount2, unshare, setns, pivot_root is in none,
# the new mount API, bpf, perf_event_open, ...) is absent: EPERM, the default action.
MOBY_PERSONALITY = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
MOBY_CLONE_NS_MASK = 0x7E020000
AF_ALG, AF_VSOCK = 38, 40


def moby_seccomp_filter():  # -> pyseccomp.SyscallFilter
    """moby's default profile for a container without CAP_SYS_ADMIN, as a libseccomp filter."""
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ERRNO(errno.EPERM))
    for arch in (sc.Arch.X86, sc.Arch.X32):  # moby's archMap for SCMP_ARCH_X86_64
        try:
            f.add_arch(arch)
        except OSError:
            pass
    for name in MOBY_ALLOWED:
        try:
            f.add_rule(sc.ALLOW, name)
        except Exception:  # noqa: BLE001 - a call this libseccomp does not know: left denied
            continue
    f.add_rule(sc.ALLOW, "socket", sc.Arg(0, sc.LT, AF_ALG))
    f.add_rule(sc.ALLOW, "socket", sc.Arg(0, sc.EQ, AF_ALG + 1))
    f.add_rule(sc.ALLOW, "socket", sc.Arg(0, sc.GT, AF_VSOCK))
    for persona in MOBY_PERSONALITY:
        f.add_rule(sc.ALLOW, "personality", sc.Arg(0, sc.EQ, persona))
    f.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, MOBY_CLONE_NS_MASK, 0))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    f.set_attr(sc.Attr.CTL_NNP, 0)  # runc without no-new-privileges: loaded with CAP_SYS_ADMIN
    return f


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)(effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF,
                                 effective >> 32, permitted >> 32, inheritable >> 32)
    _check(_libc.capset(header, data), "capset")


def drop_to_docker_caps() -> None:
    """Keep Docker's 14 capabilities: bounding set first (needs CAP_SETPCAP, which stays),
    ambient cleared, then permitted = effective = the 14 and inheritable empty (moby since
    the 2022 fix); root's exec then gets the bounding set, i.e. the 14."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if not DOCKER_CAP_MASK & (1 << cap):
            _check(_libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0), f"drop cap {cap}")
    _check(_libc.prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0), "ambient")
    _capset(DOCKER_CAP_MASK, DOCKER_CAP_MASK, 0)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


# --- the container ------------------------------------------------------------------------

def _layout(zip_path: Path, submission: Path | None, root: str = "/") -> None:
    """Gradescope's /autograder on a fresh tmpfs (we are in the container's mount namespace).

    On the host's files (`root` "/") `run_autograder` is the zip's with the project's venv
    in place of the image's; in an image root (`--root`) it is the zip's own, unchanged.
    """
    ag = Path(root, AG.lstrip("/"))
    ag.mkdir(exist_ok=True)
    _mount("tmpfs", str(ag), "tmpfs", MS_NOSUID | MS_NODEV, "size=512m,mode=0755")
    for name in ("source", "submission", "results"):
        (ag / name).mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(ag / "source")
    for name in ("setup.sh", "run_autograder"):  # a test's minimal zip may hold no setup.sh
        if (ag / "source" / name).is_file():
            (ag / "source" / name).chmod(0o755)
    original = (ag / "source" / "run_autograder").read_text()
    if root == "/":
        from coursekit.image import VENV

        lines = [line for line in original.splitlines() if "mamba" not in line and VENV not in line]
        if not lines or lines[-1].strip() != f"python {AG}/source/run_otter.py":
            raise RuntimeError(f"the zip's run_autograder changed; harness needs updating:\n{original}")
        lines.insert(1, f"export PATH={VENV_BIN}:$PATH  # the project's venv in place of the image's")
        original = "\n".join(lines) + "\n"
    (ag / "run_autograder").write_text(original)
    (ag / "run_autograder").chmod(0o755)
    if submission is not None:
        shutil.copy(submission, ag / "submission" / submission.name)
    (ag / "submission_metadata.json").write_text(json.dumps({
        "id": 123456789, "created_at": "2026-01-01T00:00:00.000000-08:00",
        "assignment": {"id": 1, "title": "Attention Basics", "total_points": "12.0"},
        "submission_method": "upload", "users": [{"email": "student@example.edu",
                                                   "id": 1, "name": "Student"}],
        "previous_submissions": []}))


def _cgroupfs_read_only(root: str = "/") -> None:
    """Docker mounts cgroupfs read-only in a container that is not privileged: the
    container's copies of /sys/fs/cgroup and every mount below it become read-only
    (the host's stay as they are)."""
    cgroupfs = os.path.join(root, CGROUPFS.lstrip("/"))
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in points:
        if point == cgroupfs or point.startswith(cgroupfs + "/"):
            _mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _reap_until(pid: int) -> int:
    """PID 1's loop: reap every orphan until `pid` ends; its wait status."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1 << 8
        except InterruptedError:
            continue
        if got == pid:
            return status


def _container_init(args: argparse.Namespace) -> int:
    """PID 1 of the container (still fully privileged)."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0), "pdeathsig")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    root = args.root or "/"
    if args.root:  # an image's root folder (a debootstrap): the kernel's files, the host's DNS
        _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for shared in ("dev", "sys"):
            _mount(f"/{shared}", f"{root}/{shared}", None, MS_BIND | MS_REC)
        # the host's DNS, and its CA bundle (a network behind a TLS proxy has its own CA)
        for host_file in ("/etc/resolv.conf", "/etc/ssl/certs/ca-certificates.crt"):
            if os.path.isfile(host_file) and os.path.isfile(f"{root}{host_file}"):
                _mount(host_file, f"{root}{host_file}", None, MS_BIND)
    _mount("tmpfs", f"{root}/root", "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=0700")
    _cgroupfs_read_only(root)
    _layout(Path(args.zip), Path(args.submission) if args.submission else None, root)
    env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root", "HOSTNAME": "gradescope"}
    env.update(dict(kv.split("=", 1) for kv in args.env))
    env.pop("COURSEKIT_REFUSE", None)  # the refusals here are the kernel's, never our switch
    child = os.fork()
    if child == 0:
        try:
            profile = None if args.no_seccomp else moby_seccomp_filter()  # made before a chroot hides pyseccomp
            if args.root:
                os.chroot(args.root)
            os.chdir(args.cwd)
            if profile is not None:
                profile.load()
            if not args.keep_caps:
                drop_to_docker_caps()
            os.execvpe(args.command[0], args.command, env)
        except BaseException as exc:  # noqa: BLE001
            sys.stderr.write(f"container: could not start {args.command}: {exc!r}\n")
        os._exit(126)
    status = _reap_until(child)
    left = _leftovers()
    try:
        os.kill(-1, signal.SIGKILL)  # the container stops: every process left in it ends
    except ProcessLookupError:
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    shutil.copytree(Path(root, AG.lstrip("/"), "results"), Path(args.out) / "results", dirs_exist_ok=True)
    (Path(args.out) / "leftovers.json").write_text(json.dumps(left, indent=1))
    return os.waitstatus_to_exitcode(status)


def _leftovers() -> list[dict]:
    """Processes still in the container when COMMAND has ended (12 scans in 0.6 s: a
    process that changes pid every few ms can slip through one scan)."""
    seen: dict[int, dict] = {}
    for _ in range(12):
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                uid = os.stat(f"/proc/{entry}").st_uid
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")[:300]
            except OSError:
                continue
            seen.setdefault(int(entry), {"pid": int(entry), "uid": uid, "cmdline": cmdline})
        time.sleep(0.05)
    return sorted(seen.values(), key=lambda p: p["pid"])


def run(args: argparse.Namespace) -> int:
    if not os.path.isdir(AG):
        os.mkdir(AG, 0o755)  # an empty folder on the host, only ever mounted over
        sys.stderr.write(f"container: created the empty folder {AG} on the host to mount over\n")
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID), "unshare")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _container_init(args)
        except BaseException as exc:  # noqa: BLE001
            sys.stderr.write(f"container: {exc!r}\n")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code if 0 <= code < 256 else 128 + abs(code) % 128)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# --- what the kernel allows inside ------------------------------------------------------

def _errno_of(fn) -> int:
    """0 when `fn` (a raw call returning -1 on error) succeeded, else its errno's name."""
    ctypes.set_errno(0)
    result = fn()
    return 0 if result != -1 else ctypes.get_errno()


def _in_child(fn) -> str:
    """Run `fn` in a throwaway child (it may change namespaces); "ok" or the errno's name."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            err = fn()
            answer = "ok" if not err else errno.errorcode.get(err, str(err))
        except OSError as exc:
            answer = errno.errorcode.get(exc.errno or 0, str(exc))
        except BaseException as exc:  # noqa: BLE001
            answer = f"failed ({type(exc).__name__}: {exc})"
        os.write(w, answer.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    return answer


def _raw_clone(flags: int) -> int:
    """clone(flags | SIGCHLD) as a raw call (a fork; the child exits at once)."""
    ctypes.set_errno(0)
    pid = _libc.syscall(ctypes.c_long(_nr("clone")), ctypes.c_ulong(flags | signal.SIGCHLD), None, None, None, None)
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
        return 0
    return ctypes.get_errno()


def _nr(name: str) -> int:
    import pyseccomp as sc

    return sc.resolve_syscall(sc.system_arch(), name)


def _syscall(name: str, *args) -> int:
    return _errno_of(lambda: _libc.syscall(ctypes.c_long(_nr(name)), *args))


def _status() -> dict[str, str]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.startswith(("Cap", "NoNewPrivs", "Seccomp", "Uid")):
            out[key] = value.strip()
    return out


def _sandbox_probe() -> dict:
    """The sandbox's own probe, as `coursekit grade` runs it before grading."""
    sys.path.insert(0, str(REPO))
    from coursekit.sandbox import Sandbox

    box = Sandbox({})
    try:
        box.start(probe_only=True)
        return {"level": box.level, "layers": box.layers}
    finally:
        box.close()


def probe(out: Path) -> None:
    """What the kernel allows in here (run as the container's COMMAND)."""
    scratch = "/root/scratch"  # in the container's private tmpfs
    os.makedirs(scratch, exist_ok=True)

    def private(call):  # a mount call that succeeds acts on a copy of the mount table only
        return lambda: (_libc.unshare(CLONE_NEWNS), _errno_of(call))[1]

    checks = {
        "unshare(CLONE_NEWNS)": lambda: _errno_of(lambda: _libc.unshare(CLONE_NEWNS)),
        "unshare(CLONE_NEWUSER)": lambda: _errno_of(lambda: _libc.unshare(CLONE_NEWUSER)),
        "unshare(CLONE_NEWPID|CLONE_NEWNET)": lambda: _errno_of(
            lambda: _libc.unshare(CLONE_NEWPID | CLONE_NEWNET)),
        "mount(tmpfs)": private(lambda: _libc.mount(b"tmpfs", scratch.encode(), b"tmpfs", 0, None)),
        "umount2(/autograder)": private(lambda: _libc.umount2(AG.encode(), 2)),
        "setns(own mount ns)": lambda: _errno_of(lambda: _libc.setns(
            os.open("/proc/self/ns/mnt", os.O_RDONLY), CLONE_NEWNS)),
        "pivot_root": private(lambda: _libc.syscall(ctypes.c_long(_nr("pivot_root")), b"/", b"/")),
        "fsopen(tmpfs)": lambda: _syscall("fsopen", b"tmpfs", 0),
        "open_tree(/)": lambda: _syscall("open_tree", -100, b"/", 1),  # OPEN_TREE_CLONE
        "clone(CLONE_NEWNS)": lambda: _raw_clone(CLONE_NEWNS),
        "clone(CLONE_NEWUSER)": lambda: _raw_clone(CLONE_NEWUSER),
        "clone()": lambda: _raw_clone(0),
        "clone3": lambda: _syscall("clone3", None, ctypes.c_size_t(0)),
        "socket(AF_INET)": lambda: (socket.socket(socket.AF_INET).close(), 0)[1],
        "socket(AF_VSOCK)": lambda: (socket.socket(AF_VSOCK, socket.SOCK_STREAM).close(), 0)[1],
    }
    result = {"status": _status(), "calls": {name: _in_child(fn) for name, fn in checks.items()},
              "COURSEKIT_REFUSE": os.environ.get("COURSEKIT_REFUSE"), "uid": os.getuid()}
    with open("/proc/self/mountinfo") as f:
        result["autograder_mount"] = next((line.split()[8] for line in f
                                           if line.split()[4] == AG), None)
    result["autograder"] = sorted(p.name for p in Path(AG).iterdir())
    result["sandbox"] = _sandbox_probe()
    out.write_text(json.dumps(result, indent=1))


def caps_of(hex_mask: str) -> set[str]:
    """Capability names of a /proc/self/status mask (only the ones we name)."""
    names = {**DOCKER_CAPS, "CAP_SYS_ADMIN": CAP_SYS_ADMIN, "CAP_SYS_PTRACE": 19,
             "CAP_DAC_READ_SEARCH": 2, "CAP_NET_ADMIN": 12, "CAP_SYS_RESOURCE": 24}
    mask = int(hex_mask, 16)
    return {name for name, bit in names.items() if mask & (1 << bit)}


# --- the tests' side -------------------------------------------------------------------------

@dataclass
class ContainerRun:
    rc: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    out: Path

    def why(self) -> str:
        state = "TIMED OUT" if self.timed_out else f"exit {self.rc}"
        return f"[{state} after {self.seconds:.0f} s] {(self.stdout + self.stderr)[-3000:]}"

    @property
    def leftovers(self) -> list[dict]:
        path = self.out / "leftovers.json"
        return json.loads(path.read_text()) if path.is_file() else []

    @property
    def results(self) -> dict | None:
        path = self.out / "results" / "results.json"
        return json.loads(path.read_text()) if path.is_file() else None


def in_container(command: list[str], *, zip_path: Path, out: Path, submission: Path | None = None,
                 env: dict[str, str] | None = None, cwd: str = AG, keep_caps: bool = False,
                 seccomp: bool = True, timeout: float = 300, root: Path | None = None) -> ContainerRun:
    """Run `command` in a fresh container (a subprocess: `python -m tests.container run`);
    `root`: an image's root folder to run in (chroot) instead of the host's files."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tests.container", "run", "--zip", str(zip_path), "--out", str(out),
           "--cwd", cwd]
    if root is not None:
        cmd += ["--root", str(root)]
    if submission is not None:
        cmd += ["--submission", str(submission)]
    if keep_caps:
        cmd.append("--keep-caps")
    if not seccomp:
        cmd.append("--no-seccomp")
    for key, value in (env or {}).items():
        cmd += ["--env", f"{key}={value}"]
    cmd += ["--", *command]
    host_env = {k: v for k, v in os.environ.items() if k != "COURSEKIT_REFUSE"}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=host_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)  # PID 1 of the container dies with its parent
        stdout, stderr = proc.communicate()
    return ContainerRun(proc.returncode, stdout or "", stderr or "", timed_out,
                        time.monotonic() - start, out)


def gradescope(zip_path: Path, notebook: Path, out: Path, timeout: float = 300, **kw) -> ContainerRun:
    """Grade `notebook` as Gradescope does: `/autograder/run_autograder` in the container
    (keep_caps / seccomp as `in_container`)."""
    return in_container(["bash", f"{AG}/run_autograder"], zip_path=zip_path, out=out,
                        submission=notebook, timeout=timeout, **kw)


def probe_in_container(zip_path: Path, out: Path, **kw) -> tuple[dict | None, ContainerRun]:
    """`probe` in a container (keep_caps / seccomp as `in_container`)."""
    inside = out / "probe.json"
    run_ = in_container([sys.executable, "-m", "tests.container", "probe", str(inside)],
                        zip_path=zip_path, out=out, cwd=str(REPO), timeout=120, **kw)
    return (json.loads(inside.read_text()) if inside.is_file() else None), run_


def host_can_make_containers() -> str:
    """Why this machine cannot run the harness, or ""."""
    if os.geteuid() != 0:
        return "needs root"
    if os.uname().machine != "x86_64":
        return "moby's seccomp rules are written out for x86_64 only"
    try:
        import pyseccomp  # noqa: F401
    except ImportError:
        return "pyseccomp is missing"
    try:
        caps = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                        if line.startswith("CapEff:")), 16)
    except (OSError, StopIteration, ValueError):
        return "cannot read capabilities"
    if not caps & (1 << CAP_SYS_ADMIN):
        return "needs CAP_SYS_ADMIN on the host (this already is a container without it)"
    if os.path.exists(AG) and not stat.S_ISDIR(os.lstat(AG).st_mode):
        return f"{AG} exists and is not a folder"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.container")
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--zip", required=True)
    r.add_argument("--submission")
    r.add_argument("--out", required=True)
    r.add_argument("--cwd", default=AG)
    r.add_argument("--root", help="an image's root folder: run COMMAND chrooted there")
    r.add_argument("--env", action="append", default=[])
    r.add_argument("--keep-caps", action="store_true")
    r.add_argument("--no-seccomp", action="store_true")
    r.add_argument("command", nargs="+")
    p = sub.add_parser("probe")
    p.add_argument("out")
    args = parser.parse_args(argv)
    if args.what == "probe":
        probe(Path(args.out))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
