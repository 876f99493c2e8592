"""Attack (a notebook cell): hold memory in a System V shared-memory segment.

A segment created, touched and detached is in no process's resident set and no open
file, so accounting cannot see it; where the job has no IPC namespace of its own (the
`landlock` and `process` levels) it even outlives the job. The seccomp layer denies
shmget and msgget: this exits 0 only when the kernel refused the segment (EPERM).
"""
import ctypes
import errno
import os
import sys

IPC_PRIVATE, IPC_CREAT = 0, 0o1000
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget.restype = ctypes.c_int
libc.shmget.argtypes = (ctypes.c_int, ctypes.c_size_t, ctypes.c_int)
shm_id = libc.shmget(IPC_PRIVATE, 64 << 20, IPC_CREAT | 0o600)
if shm_id >= 0:
    libc.shmctl(shm_id, 0, None)  # IPC_RMID: leave nothing behind on the test machine
    sys.exit(1)
sys.exit(0 if ctypes.get_errno() == errno.EPERM else 2)
