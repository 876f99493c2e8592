"""What student code may see of the machine: the lab's runtime and nothing else.

The runtime is the Python install and its packages (the folders on `sys.path`) and the
system libraries they load (`/usr` and its compatibility links), all read-only. Left out:
the grader's own code (`coursekit`, `course_config.py`: a folder on `sys.path` that holds
them, such as the repository, is not bound, and where they are installed inside
site-packages they are masked), the course data, the submissions and every home folder.
The namespaces layer mounts this view; the Landlock layer allows exactly these paths.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
FILES = ("/etc/ld.so.cache", "/etc/localtime")
HIDDEN = ("coursekit", "course_config.py", "coursekit.egg-link")
# What of /proc a job may read: its own process (`/proc/self` opened by the job's init
# names that process's folder) and machine-wide figures libraries ask for; never another
# process's folder (its command line, its status), which Landlock alone would not hide
# where there is no PID namespace with a proc of its own.
PROC_READABLE = ("/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg",
                 "/proc/uptime", "/proc/version", "/proc/filesystems", "/proc/sys",
                 "/proc/driver", "/proc/modules")  # the last two: the CUDA driver reads them


@dataclass
class View:
    """Read-only bind mounts, symlinks to recreate, and installed grader files to mask."""

    binds: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    masks: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # extra device nodes, shown at /dev/<name>


def with_gpu(view: View, nodes: list[str] | tuple[str, ...]) -> View:
    """`view` plus one GPU: its device nodes, `/sys` read-only (the CUDA driver reads the
    PCI topology there) and the folders outside the runtime that hold the driver's
    `libcuda` (as in GPU container images, found through LD_LIBRARY_PATH)."""
    binds = list(view.binds)
    if os.path.isdir("/sys") and "/sys" not in binds:
        binds.append("/sys")
    for folder in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        real = os.path.realpath(folder) if folder else ""
        if (real and real != "/" and os.path.isdir(real) and not _holds_grader(real)
                and any(n.startswith("libcuda.so") for n in _names(real))
                and not any(real == b or real.startswith(b + "/") for b in binds)):
            binds.append(real)
    return View(binds, dict(view.links), list(view.masks), list(nodes))


def _names(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _holds_grader(folder: str) -> bool:
    return any(os.path.exists(os.path.join(folder, name)) for name in HIDDEN[:2])


def runtime_view() -> View:
    """The view for this interpreter (computed in the trusted process, passed on)."""
    view = View()
    for path in SYSTEM:
        if os.path.islink(path):
            view.links[path] = os.readlink(path)
        elif os.path.isdir(path):
            view.binds.append(path)
    view.binds += [p for p in FILES if os.path.isfile(p)]
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if real == "/":
            continue
        if any(real == b or real.startswith(b + "/") for b in view.binds):
            continue
        if _holds_grader(real) and not real.endswith("-packages"):
            continue  # the repository (or the autograder's folder) itself: never visible
        view.binds.append(real)
    for folder in view.binds:
        if folder.endswith("-packages"):
            view.masks += [os.path.join(folder, name) for name in HIDDEN
                           if os.path.exists(os.path.join(folder, name))]
    return view


def readable_paths(view: View) -> list[str]:
    """The paths a Landlock rule set lets student code read: the runtime, with the
    entries of package folders listed one by one so that the grader's are left out."""
    out = []
    for folder in view.binds:
        if folder.endswith("-packages") and os.path.isdir(folder):
            out += [os.path.join(folder, e) for e in os.listdir(folder) if e not in HIDDEN]
        else:
            out.append(folder)
    return out
