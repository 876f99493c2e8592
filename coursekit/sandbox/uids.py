"""Sandbox user ids, for a grader that runs as root.

As root, every job drops to an unprivileged uid of its own (61000 + n), so that even
where no namespace can be made, student code cannot read the grader's files or signal
its processes. Two graders on one machine (two `coursekit grade` runs, nbgrader and
otter) must not share a uid: each holds an exclusive flock on the uid's file in a
root-only folder for as long as its sandbox lives.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from pathlib import Path

SANDBOX_UID_BASE = 61000
UID_POOL = 256
UID_LOCKS = Path(tempfile.gettempdir()) / "coursekit-uids"


class UidClaim:
    """A claimed uid (None when the grader is not root); release() frees it."""

    def __init__(self, uid: int | None, fd: int | None) -> None:
        self.uid, self._fd = uid, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def claim(slot: int = 0) -> UidClaim:
    """Claim a sandbox uid no other grader on this machine holds (root only)."""
    if os.geteuid() != 0:
        return UidClaim(None, None)
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    info = UID_LOCKS.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        raise RuntimeError(f"{UID_LOCKS} must be a folder only root can use")
    for i in range(UID_POOL):
        uid = SANDBOX_UID_BASE + (slot + i) % UID_POOL
        fd = os.open(UID_LOCKS / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return UidClaim(uid, fd)
    raise RuntimeError(f"all {UID_POOL} sandbox uids are in use on this machine")
