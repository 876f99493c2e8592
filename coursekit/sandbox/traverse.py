"""Layer: a way through closed folders above the runtime, at the `landlock` level only.

What it fixes: where namespaces are refused, the job runs as the sandbox uid on the
host's own folders, so the Python runtime must be reachable by that uid. A project under
a closed folder (`mktemp -d`, a 0750 home, `/root`) could not be graded: every job died
before student code ran. As root, the grader now adds one POSIX ACL entry to each closed
folder on the way to the runtime: search (`x`, never read) for the sandbox group, a group
that only jobs at the `landlock` level hold. Landlock still decides what a job may read —
the runtime alone — so passing through a closed folder shows it nothing else. Jobs at the
`process` level (no Landlock) never get the group, so there the closed folder stays closed
and the grader refuses with its one-line message instead. The entry stays on the folder
(it lets only that group through); `setfacl -x g:60999 FOLDER` removes it.
"""

from __future__ import annotations

import errno
import os
import stat
import struct

SANDBOX_GID = 60999  # below the sandbox uids (61000+): a group held by landlock-level jobs only
_XATTR = "system.posix_acl_access"
_VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED = 0xFFFFFFFF
_ENTRY = struct.Struct("<HHI")


def closed_folders(paths: list[str]) -> list[str]:
    """The folders on the way to `paths` (the paths themselves excluded) that other users
    may not search: where the sandbox uid's path walk stops."""
    found: list[str] = []
    for path in paths:
        parts = os.path.abspath(path).split("/")[1:-1]
        for i in range(1, len(parts) + 1):
            folder = "/" + "/".join(parts[:i])
            try:
                mode = os.stat(folder).st_mode
            except OSError:
                break
            if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH and folder not in found:
                found.append(folder)
    return found


def _entries(folder: str) -> list[tuple[int, int, int]]:
    """The folder's access ACL as (tag, perm, id) entries: its xattr, else its mode bits."""
    try:
        raw = os.getxattr(folder, _XATTR, follow_symlinks=False)
    except OSError:
        raw = b""
    if len(raw) >= 4 and (len(raw) - 4) % _ENTRY.size == 0 and struct.unpack_from("<I", raw)[0] == _VERSION:
        return [_ENTRY.unpack_from(raw, 4 + i * _ENTRY.size) for i in range((len(raw) - 4) // _ENTRY.size)]
    mode = os.stat(folder, follow_symlinks=False).st_mode
    return [(USER_OBJ, (mode >> 6) & 7, _UNDEFINED), (GROUP_OBJ, (mode >> 3) & 7, _UNDEFINED),
            (OTHER, mode & 7, _UNDEFINED)]


def grant(folder: str, gid: int = SANDBOX_GID) -> None:
    """Let group `gid` search (not list) `folder`: one named-group ACL entry, the mask
    widened by search only. Raises OSError where the filesystem has no ACLs, where the
    folder has named entries of its own (widening the mask would let them search too), and
    where `gid` is a group of this machine (its members would get through as well)."""
    import grp

    try:
        grp.getgrgid(gid)
    except KeyError:
        pass
    else:
        raise OSError(errno.EEXIST, f"group {gid} exists on this machine")
    entries = [e for e in _entries(folder) if not (e[0] == GROUP and e[2] == gid)]
    if any(e[0] in (USER, GROUP) for e in entries):
        raise OSError(errno.EPERM, f"{folder} has ACL entries of its own")
    old_mask = next((e[1] for e in entries if e[0] == MASK), None)
    group_obj = next(e[1] for e in entries if e[0] == GROUP_OBJ)
    entries = [e for e in entries if e[0] != MASK] + [(GROUP, 1, gid)]
    # the mask bounds every group-class entry: keep what it allowed before (or the owning
    # group's bits where there was none) and add search for our group
    mask = (group_obj if old_mask is None else old_mask) | 1
    entries.append((MASK, mask, _UNDEFINED))
    entries.sort(key=lambda e: (e[0], e[2]))
    blob = struct.pack("<I", _VERSION) + b"".join(_ENTRY.pack(*e) for e in entries)
    os.setxattr(folder, _XATTR, blob, follow_symlinks=False)
