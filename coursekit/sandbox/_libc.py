"""The few libc calls the sandbox layers need that Python's `os` module lacks."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
SYS_PIVOT_ROOT = 155  # x86_64
SYS_CAPSET = 126
if os.uname().machine == "aarch64":
    SYS_PIVOT_ROOT, SYS_CAPSET = 41, 91


def check(result: int, what: str) -> int:
    """Raise OSError with errno when a libc call returned -1."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2)."""
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
          f"mount {target}")


def unshare(flags: int) -> None:
    """unshare(2) (os.unshare is Python 3.12+)."""
    check(_libc.unshare(flags), "unshare")


def umount2(target: str, flags: int) -> None:
    """umount2(2)."""
    check(_libc.umount2(target.encode(), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2)."""
    check(_libc.syscall(SYS_PIVOT_ROOT, new_root.encode(), put_old.encode()), "pivot_root")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    return check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl {option}")


def sethostname(name: str) -> None:
    """sethostname(2)."""
    check(_libc.sethostname(name.encode(), len(name)), "sethostname")


def capset_empty() -> None:
    """Clear this process's effective, permitted and inheritable capabilities."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable}, all zero
    check(_libc.syscall(SYS_CAPSET, header, data), "capset")


def setfsids(uid: int, gid: int) -> tuple[int, int]:
    """Set this thread's filesystem uid and gid (setfsuid(2)/setfsgid(2): per thread, and
    used for /proc's ptrace-style access checks); returns the previous pair."""
    old_gid = _libc.setfsgid(gid)
    old_uid = _libc.setfsuid(uid)
    return old_uid, old_gid
