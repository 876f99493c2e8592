"""Layer: Linux namespaces and a fresh filesystem view for each job.

In the job's first child (`enter`): new mount, PID, network, IPC and UTS namespaces,
plus a user namespace when the grader is not root (unprivileged user namespaces; as root
none is needed and the job later drops to its own uid). Its next fork is the job's init
(PID 1 of a namespace nothing else lives in): when it ends, the kernel kills every process
the student left behind, and no process outside is visible or can be signalled.

In that init (`build_root`): a new root on a tmpfs holding only the lab's runtime,
bind-mounted read-only (`coursekit.sandbox.view`), fresh `/proc`, a minimal `/dev`, and
empty private `/tmp` and `/job` (the working folder); then `pivot_root` and the old root
is detached. The network namespace has only a loopback interface that is down.
"""

from __future__ import annotations

import os
from pathlib import Path

from coursekit.sandbox import _libc
from coursekit.sandbox.view import View

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
MNT_DETACH = 2
STAGE = "/tmp"  # where the new root is assembled (a private mount: the host's /tmp is untouched)
DEVICES = ("null", "zero", "full", "random", "urandom")
TMP_SIZE = "size=256m"  # /tmp and /job are memory: bounded, and counted by the memory cgroup or accounting (memcg.py)


def enter(as_root: bool) -> None:
    """Unshare the job's namespaces (call in the job's first child, before forking init)."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    uid, gid = os.getuid(), os.getgid()
    _libc.unshare(flags if as_root else flags | CLONE_NEWUSER)
    if not as_root:  # the grader's own uid is "root" inside, and nothing else exists
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def _keep_flags(path: str, device: bool = False) -> int:
    """Mount flags for a read-only re-mount of `path`'s bind: nodev except for a device
    node, plus those of its mount that must be kept (the kernel refuses to clear locked
    ones inside a user namespace)."""
    f = os.statvfs(path).f_flag
    out = MS_RDONLY | MS_NOSUID | (0 if device else MS_NODEV)
    for st, ms in ((4, MS_NODEV), (8, MS_NOEXEC), (1024, MS_NOATIME), (2048, MS_NODIRATIME),
                   (4096, MS_RELATIME)):
        if f & st:
            out |= ms
    return out


def _bind(fd: int, target: str, device: bool = False, recursive: bool = True) -> None:
    src = f"/proc/self/fd/{fd}"
    if os.path.isdir(src):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _libc.mount(src, target, None, MS_BIND | (MS_REC if recursive else 0))
    # the flags through the fd: once the stage's tmpfs covers /tmp, a source path under
    # /tmp (a clone in /tmp/...) no longer resolves by name
    _libc.mount(None, target, None, MS_BIND | MS_REMOUNT | _keep_flags(src, device))


def build_root(view: View, uid: int, gid: int) -> None:
    """Assemble the job's filesystem and make it the root (call in the job's init)."""
    _libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
    binds = [(os.open(p, os.O_PATH | os.O_CLOEXEC), p) for p in view.binds]
    devs = [(os.open(f"/dev/{d}", os.O_PATH | os.O_CLOEXEC), f"/dev/{d}") for d in DEVICES]
    devs += [(os.open(p, os.O_PATH | os.O_CLOEXEC), "/dev/" + os.path.basename(p)) for p in view.devices]
    _libc.mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    opts = f"{TMP_SIZE},mode=1777,uid={uid},gid={gid}"
    # The private /tmp and /job first: a runtime that lives under /tmp (a clone in
    # /tmp/...) is then bound on top of it, not hidden below it.
    for path in ("/tmp", "/job"):
        os.makedirs(STAGE + path, exist_ok=True)
        _libc.mount("tmpfs", STAGE + path, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    for fd, path in binds:
        # /sys alone, without what is mounted inside it (cgroups, bpf, tracing): a
        # recursive bind would keep those mounts' own, writable, flags
        _bind(fd, STAGE + path, recursive=path != "/sys")
    for link, target in view.links.items():
        os.makedirs(os.path.dirname(STAGE + link), exist_ok=True)
        os.symlink(target, STAGE + link)
    for path in view.masks:  # e.g. an installed copy of the grader inside site-packages
        if os.path.isdir(STAGE + path):
            _libc.mount("tmpfs", STAGE + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")
        elif os.path.exists(STAGE + path):
            _libc.mount(f"/proc/self/fd/{devs[0][0]}", STAGE + path, None, MS_BIND)
    os.makedirs(STAGE + "/dev", exist_ok=True)
    _libc.mount("tmpfs", STAGE + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for fd, path in devs:
        _bind(fd, STAGE + path, device=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{STAGE}/dev/{name}")
    os.makedirs(STAGE + "/dev/shm", exist_ok=True)  # after /dev's own tmpfs, which would hide it
    _libc.mount("tmpfs", STAGE + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts)
    os.makedirs(STAGE + "/proc", exist_ok=True)
    _libc.mount("proc", STAGE + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(STAGE + "/etc", exist_ok=True)
    Path(STAGE + "/etc/passwd").write_text(f"student:x:{uid}:{gid}:student:/job:/bin/sh\n")
    Path(STAGE + "/etc/group").write_text(f"student:x:{gid}:\n")
    Path(STAGE + "/etc/hostname").write_text("sandbox\n")
    for fd, _ in binds + devs:
        os.close(fd)
    _libc.mount(None, STAGE, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(STAGE)
    _libc.pivot_root(".", ".")  # the old root ends up stacked on "/": detach it
    _libc.umount2(".", MNT_DETACH)
    os.chdir("/job")
    _libc.sethostname("sandbox")
