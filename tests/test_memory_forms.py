"""Memory in every form counts (issue 19, deliverable 4).

Before, the supervisor summed the job's PSS only. A cell that wrote memfd files and kept
them open without mapping them held 3.84 GB against a 3072 MB limit and got full marks,
and files in the job's tmpfs mounts (/tmp, /job, /dev/shm) were free in the same way.
Now each job runs in a memory cgroup of its own where the machine lets the grader make
one (root here: cgroup v1), and elsewhere the supervisor adds the memfd/shmem files the
job holds open and its tmpfs mounts' use to the PSS it polls (`limits.held_mb`).

Each attack holds about twice a small job limit; it must end as "out of memory", and the
next cell must still run (its own memory is there for it). A legitimate torch cell
(a DataLoader with workers, which share batches through /dev/shm) must not be stopped.
The cgroup is tested in this process (root); the accounting where the kernel itself
refuses the cgroup: as an ordinary user (EACCES on cgroupfs) and in tests/container.py's
Docker-like container (cgroupfs mounted read-only, as Docker does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from coursekit.sandbox import Limits, Sandbox

REPO = Path(__file__).resolve().parent.parent
ATTACKS = REPO / "tests" / "attacks" / "memory"
MEMFD = (ATTACKS / "memfd_hold.py").read_text()  # holds 1440 MB: twice MEMFD_LIMIT
TMPFS = (ATTACKS / "tmpfs_fill.py").read_text()  # fills 750 MB: nearly twice TMPFS_LIMIT
MEMFD_LIMIT, TMPFS_LIMIT = 720, 400
# the next cell really gets its memory back: 400 MB touched, under the 720 MB limit
AFTER_MEMFD = "keep = b'1' * (400 << 20)\nassert len(keep) == 400 << 20"
# ... and a fresh, empty /tmp (a crash, os._exit, would skip this cell)
AFTER_TMPFS = "import os\nif os.path.exists('/tmp/fill.bin') or os.listdir('/dev/shm'):\n    os._exit(3)"
LEGIT = """
import torch
from torch.utils.data import DataLoader, TensorDataset
x, y = torch.randn(4096, 64), torch.randn(4096, 1)
model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(2):
    for xb, yb in DataLoader(TensorDataset(x, y), batch_size=256, num_workers=2):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(xb), yb).backward()
        opt.step()
big = torch.ones(1024, 1024, 64)  # 256 MB touched, well under the limit
"""


def _limits(memory_mb: int) -> Limits:
    return Limits(total_s=120, cell_s=25, call_s=5, long_call_s=5, memory_mb=memory_mb)


def _job(box: Sandbox, memory_mb: int, *cells: str):
    return box.run_job({"cells": list(cells), "calls": [], "training": {}}, _limits(memory_mb), lambda c: c)


def _cells_run(result) -> list[int]:
    return sorted({i for kind, i, _ in result.timeline if kind == "cell"})


# --- (a) a memory cgroup per job (root: cgroup v1 here) ------------------------------------

@pytest.fixture(scope="module")
def box():
    if os.geteuid() != 0 or not os.access("/sys/fs/cgroup/memory", os.W_OK):
        pytest.skip("needs root and a writable cgroup v1 memory controller")
    sandbox = Sandbox({"x": np.zeros(3, dtype=np.float32)}, slot=12, preload=["numpy"])
    sandbox.start()
    yield sandbox
    sandbox.close()


def test_the_cgroup_is_the_mechanism_here(box):
    assert box.memory_guard == "cgroup v1"
    assert "memcg" in box.layers


def test_memfd_held_outside_rss_is_out_of_memory_in_the_cgroup(box):
    result = _job(box, MEMFD_LIMIT, MEMFD, AFTER_MEMFD)
    assert result.outcome.skipped_cells == {0: "out of memory"}
    assert _cells_run(result) == [0, 1]


def test_tmpfs_files_are_out_of_memory_in_the_cgroup(box):
    result = _job(box, TMPFS_LIMIT, TMPFS, AFTER_TMPFS)
    assert result.outcome.skipped_cells == {0: "out of memory"}
    assert _cells_run(result) == [0, 1]


def test_legitimate_torch_use_is_not_stopped_by_the_cgroup(box):
    result = _job(box, MEMFD_LIMIT, LEGIT, "y = 1")
    assert result.outcome.skipped_cells == {} and result.outcome.failed_calls == {}
    assert _cells_run(result) == [0, 1]


def test_no_job_cgroup_is_left_behind(box):
    """The job's cgroups are gone after it (others in the folder: graders killed before
    they could remove theirs, or running beside this one, are not this test's)."""
    parent = box._memcg.folder
    ours = lambda: {p for p in os.listdir(parent) if p.startswith("coursekit-job-")}  # noqa: E731
    before = ours()
    result = _job(box, TMPFS_LIMIT, "x = 1")
    assert _cells_run(result) == [0]
    assert ours() <= before


# --- (b) accounting, where the kernel refuses the cgroup ---------------------------------

def _as_ordinary_user(spec: dict) -> dict:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as an ordinary user")
    for path in (REPO, Path(sys.executable).parent):
        if not all(p.stat().st_mode & 0o005 == 0o005 for p in [path, *path.parents] if p != Path("/")):
            pytest.skip(f"{path} is not readable by other users")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, str(ATTACKS / "job.py"), json.dumps(spec)],
                          capture_output=True, text=True, cwd="/", timeout=300,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memfd_is_counted_for_an_ordinary_user():
    out = _as_ordinary_user({"memory_mb": MEMFD_LIMIT, "cells": [MEMFD, AFTER_MEMFD]})
    assert out["skipped"] == {"0": "out of memory"}
    assert out["cells_run"] == [0, 1]
    assert out["level"] == "namespaces"
    assert out["memory_guard"].startswith("accounting")  # cgroupfs: EACCES for this user


@pytest.mark.slow
def test_tmpfs_is_counted_for_an_ordinary_user():
    out = _as_ordinary_user({"memory_mb": TMPFS_LIMIT, "cells": [TMPFS, AFTER_TMPFS]})
    assert out["skipped"] == {"0": "out of memory"}
    assert out["cells_run"] == [0, 1]
    assert out["memory_guard"].startswith("accounting")


@pytest.mark.slow
def test_legitimate_torch_use_is_not_stopped_by_accounting():
    out = _as_ordinary_user({"memory_mb": MEMFD_LIMIT, "cells": [LEGIT, "y = 1"]})
    assert out["memory_guard"].startswith("accounting")
    assert out["skipped"] == {} and out["failed"] == {}
    assert out["cells_run"] == [0, 1]


def _fake_zip(path: Path) -> Path:
    """The least the container harness needs of an autograder zip: its run_autograder."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("run_autograder", "#!/usr/bin/env bash\npython /autograder/source/run_otter.py\n")
    return path


@pytest.mark.slow
def test_memfd_is_counted_in_a_docker_like_container(tmp_path):
    """Docker mounts cgroupfs read-only: no cgroup for the job (EROFS), and no
    CAP_SYS_PTRACE: /proc/PID/fd is read with the job's own filesystem ids."""
    from tests import container

    why = container.host_can_make_containers()
    if why:
        pytest.skip(why)
    spec = {"memory_mb": MEMFD_LIMIT, "cells": [MEMFD, AFTER_MEMFD]}
    run = container.in_container([sys.executable, str(ATTACKS / "job.py"), json.dumps(spec)],
                                 zip_path=_fake_zip(tmp_path / "ag.zip"), out=tmp_path / "out",
                                 cwd=str(REPO), timeout=240)
    assert run.rc == 0, run.why()
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["level"] == "landlock"
    assert out["skipped"] == {"0": "out of memory"}
    assert out["cells_run"] == [0, 1]
    assert out["memory_guard"].startswith("accounting")


# --- System V shared memory: refused by seccomp --------------------------------------------

def test_sysv_shared_memory_is_refused_by_the_seccomp_layer():
    """A SysV segment is in no resident set and no open file, and outlives a job without an
    IPC namespace: the filter denies shmget (review of issue 19). The attack program
    exits 1 if it could make one, 0 if the kernel said EPERM."""
    from coursekit.sandbox import seccomp

    if not seccomp.available():
        pytest.skip("libseccomp is not available here")
    attack = Path(__file__).parent / "attacks" / "memory" / "sysv_shm.py"
    unfiltered = subprocess.run([sys.executable, str(attack)], check=False)
    assert unfiltered.returncode == 1  # the machine allows it: the filter is what refuses
    pid = os.fork()
    if pid == 0:
        try:
            seccomp.restrict()
            os.execv(sys.executable, [sys.executable, str(attack)])
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
