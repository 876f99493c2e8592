"""Layer: Landlock, the kernel's unprivileged access control (Linux 5.13+).

Applied in the job's init after the namespaces (as a second wall) or alone where the
namespaces are refused (a Docker container): student code may read and execute only
the runtime (`view.readable_paths`), read `/proc` and a few devices, and write only its
job folder and `/tmp`. Filesystem rules come from the `landlock` package. Two newer
parts of the same rule set are made here with the raw system call, because the package
does not know them: no TCP bind or connect (ABI 4), and no signals or abstract UNIX
sockets reaching outside the sandbox (ABI 6).
"""

from __future__ import annotations

import ctypes

from coursekit.sandbox import _libc

SYS_CREATE_RULESET, SYS_RESTRICT_SELF = 444, 446
ACCESS_NET_BIND_TCP, ACCESS_NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 where Landlock is missing or disabled."""
    try:
        import landlock

        return int(landlock.landlock_abi_version())
    except Exception:  # noqa: BLE001 - any failure means: not available
        return 0


class _Attr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


def _restrict_net_and_scope(abi: int) -> list[str]:
    net = ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    if not net and not scoped:
        return []
    attr = _Attr(0, net, scoped)
    size = ctypes.sizeof(_Attr) if abi >= 6 else 16
    fd = _libc.check(_libc._libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), size, 0),
                     "landlock_create_ruleset")
    try:
        _libc.check(_libc._libc.syscall(SYS_RESTRICT_SELF, fd, 0), "landlock_restrict_self")
    finally:
        import os

        os.close(fd)
    return (["no TCP"] if net else []) + (["signals and abstract sockets scoped"] if scoped else [])


def restrict(readable: list[str], writable: list[str]) -> list[str]:
    """Restrict this process and its future children; return what was restricted."""
    import landlock
    from landlock import FSAccess

    read = FSAccess.READ_FILE | FSAccess.READ_DIR | FSAccess.EXECUTE
    ruleset = landlock.Ruleset()
    for path in readable:
        try:
            ruleset.allow(path, rules=read if _is_dir(path) else read & FSAccess.all_file())
        except OSError:
            continue  # vanished: nothing to allow
    for path in writable:
        ruleset.allow(path, rules=FSAccess.all() if _is_dir(path) else FSAccess.all_file())
    ruleset.apply()  # also sets no_new_privs
    return ["filesystem"] + _restrict_net_and_scope(abi_version())


def _is_dir(path: str) -> bool:
    import os

    return os.path.isdir(path)
