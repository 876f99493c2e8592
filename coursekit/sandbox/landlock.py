"""Layer: Landlock, the kernel's unprivileged access control (Linux 5.13+).

Applied in the job's init after the namespaces (as a second wall) or alone where the
namespaces are refused (a Docker container): student code may read and execute only
the runtime (`view.readable_paths`), read `/proc` and a few devices, and write only its
job folder and `/tmp`; where the kernel knows them, also no TCP bind or connect (ABI 4)
and no signal or abstract UNIX socket reaching outside the sandbox (ABI 6).

Written with the three system calls directly: the `landlock` package on PyPI (1.0.0.dev5)
judges a call failed by a stale errno instead of its return value, and refused valid
rule sets at random; it also knows neither network rules nor scopes.
"""

from __future__ import annotations

import ctypes
import os

from coursekit.sandbox import _libc

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1, 2, 4, 8
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
ACCESS_NET_BIND_TCP, ACCESS_NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _syscall(*args: int | ctypes._Pointer | None) -> int:
    _libc._libc.syscall.argtypes = None
    return _libc._libc.syscall(*args)


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 where Landlock is missing or disabled."""
    result = _syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(int(result), 0)


def _fs_rights(abi: int) -> tuple[int, int]:
    """(every filesystem right this ABI handles, the subset that applies to files)."""
    every = (1 << 13) - 1  # ABI 1: execute ... make_sym
    files = EXECUTE | WRITE_FILE | READ_FILE
    if abi >= 2:
        every |= REFER
    if abi >= 3:
        every, files = every | TRUNCATE, files | TRUNCATE
    if abi >= 5:
        every, files = every | IOCTL_DEV, files | IOCTL_DEV
    return every, files


def restrict(readable: list[str], writable: list[str]) -> list[str]:
    """Restrict this process and its future children; return what was restricted."""
    abi = abi_version()
    if abi < 1:
        raise OSError("Landlock is not available")
    every, files = _fs_rights(abi)
    net = ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(every, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _libc.check(_syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                                   ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        read = READ_FILE | READ_DIR | EXECUTE
        for paths, rights in ((readable, read), (writable, every)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # not there: nothing to allow
                try:
                    allowed = rights if os.path.isdir(f"/proc/self/fd/{fd}") else rights & files
                    rule = _PathBeneath(allowed, fd)
                    _libc.check(_syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule),
                                         ctypes.c_uint32(0)), f"landlock_add_rule {path}")
                finally:
                    os.close(fd)
        _libc.prctl(38, 1)  # PR_SET_NO_NEW_PRIVS: required to restrict without privileges
        _libc.check(_syscall(SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return ["filesystem"] + (["no TCP"] if net else []) + (
        ["signals and abstract sockets scoped"] if scoped else [])
