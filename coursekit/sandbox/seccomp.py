"""Layer: a seccomp filter (through libseccomp's Python bindings, `pyseccomp`).

Denies, with EPERM, the system calls student code has no use for and that reach past
the other layers: namespaces and mounts (`unshare`, `setns`, `mount`, `clone` with
namespace flags...), tracing and reading other processes' memory, kernel keyrings,
BPF, perf, io_uring, kernel modules, clocks, reboot, System V shared memory and message
queues (memory held outside every process, which can outlive the job); and sockets: no network even where
no network namespace could be made and, where the job shares the host's filesystem and
network namespace (the `landlock` and `process` levels), no UNIX socket either, so it
cannot connect to the host's local services — `docker.sock`, D-Bus, a database — by path
or by abstract name (Landlock up to ABI 7 does not govern `connect()` to a pathname
socket). `socketpair(AF_UNIX)` stays: it makes two connected ends and reaches nothing
(multiprocessing's pipes use it).
"""

from __future__ import annotations

import errno
import socket

DENIED = (
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "move_mount", "open_tree",
    "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr", "ptrace", "process_vm_readv",
    "process_vm_writev", "kcmp", "pidfd_getfd", "keyctl", "add_key", "request_key", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "syslog", "acct", "quotactl", "open_by_handle_at", "name_to_handle_at",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm",
    "fanotify_init", "lookup_dcookie", "vhangup", "personality",
    # System V shared memory and message queues: memory in no resident set and no open
    # file (accounting cannot see it) that, without an IPC namespace, outlives the job
    "shmget", "msgget",
)


def available() -> bool:
    """Whether libseccomp and its bindings can be loaded here."""
    try:
        import pyseccomp  # noqa: F401

        pyseccomp.SyscallFilter(pyseccomp.ALLOW)
        return True
    except Exception:  # noqa: BLE001 - missing library, old kernel: not available
        return False


def restrict(unix_sockets: bool = False) -> list[str]:
    """Load the filter into this process (inherited by its children); return a summary.

    `unix_sockets`: allow `socket(AF_UNIX)` — only where the job has namespaces of its own,
    so that a named UNIX socket can reach nothing but the job (multiprocessing's listeners,
    a DataLoader's workers sharing tensors, keep working there)."""
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            f.add_rule(deny, name)
        except Exception:  # noqa: BLE001 - a call this kernel or arch does not have
            continue
    if unix_sockets:
        f.add_rule(deny, "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
    else:
        f.add_rule(deny, "socket")  # any family: network sockets and named UNIX ones alike
    f.add_rule(deny, "socketpair", sc.Arg(0, sc.NE, socket.AF_UNIX))
    for bit in (0x00020000,  # CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
                0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000):
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, bit, bit))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags are out of reach: libc falls back to clone
    f.load()  # needs no_new_privs (set before) or CAP_SYS_ADMIN
    return ["seccomp"]
