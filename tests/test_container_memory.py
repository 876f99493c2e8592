"""The grader fits the container it is given (issue 18, part 5).

Gradescope runs the autograder in a container of 768 MB by default, less than the
grader and a job need together (docs/performance.md: `otter run` peaks at about 1.2 GB).
Before, the kernel killed it mid-grade and no results.json was written. Now the grader
reads its cgroup's memory limit at start: too small, and results.json says so in one
line (and otter's log too); big enough, and each job gets at most what is left. The
end-to-end tests put `otter run` into a real memory cgroup (v1 here, v2 elsewhere) whose
limit the kernel enforces; they need root and a writable memory controller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import A, question_scores
from coursekit.sandbox import cgroup

FULL = {q: float(p) for q, p in A.points.items()}
V1_MEMORY = Path("/sys/fs/cgroup/memory")


# --- reading the limit ---------------------------------------------------------------------

def _fake_hierarchy(tmp_path: Path, lines: str, files: dict[str, str]) -> Path:
    proc = tmp_path / "cgroup"
    proc.write_text(lines)
    for rel, value in files.items():
        path = tmp_path / "fs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    return proc


def test_v2_limit_of_the_own_cgroup_or_an_ancestor(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroup, "CGROUP_ROOT", str(tmp_path / "fs"))
    proc = _fake_hierarchy(tmp_path, "0::/a/b\n", {"a/b/memory.max": "max\n", "a/memory.max": "805306368\n"})
    assert cgroup.memory_limit_bytes(str(proc)) == 768 << 20


def test_v1_limit_and_no_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroup, "CGROUP_ROOT", str(tmp_path / "fs"))
    proc = _fake_hierarchy(tmp_path, "4:memory:/job\n0::/\n",
                           {"memory/job/memory.limit_in_bytes": str(2 << 30),
                            "memory/memory.limit_in_bytes": "9223372036854771712"})
    assert cgroup.memory_limit_bytes(str(proc)) == 2 << 30
    unlimited = _fake_hierarchy(tmp_path, "4:memory:/\n", {})
    assert cgroup.memory_limit_bytes(str(unlimited)) is None


def test_malformed_files_are_no_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroup, "CGROUP_ROOT", str(tmp_path / "fs"))
    proc = _fake_hierarchy(tmp_path, "garbage\n0::/../../x\n", {"x/memory.max": "lots\n"})
    assert cgroup.memory_limit_bytes(str(proc)) is None


def test_job_memory_is_what_the_container_leaves():
    mb = 1 << 20
    assert cgroup.job_memory_mb(3072, 1100, 512, limit_bytes=2048 * mb) == (948, "")
    assert cgroup.job_memory_mb(3072, 1100, 512, limit_bytes=8192 * mb) == (3072, "")
    cap, problem = cgroup.job_memory_mb(3072, 1100, 512, limit_bytes=768 * mb)
    assert cap == 0 and "allows 768 MB" in problem and "at least 1612 MB" in problem
    cap, problem = cgroup.job_memory_mb(3072, 1100, 512, sandboxes=2, limit_bytes=3000 * mb)
    assert cap == 0 and "at least 3224 MB for 2 graders" in problem


# --- otter run in a memory cgroup the kernel enforces ------------------------------------

@pytest.fixture
def memory_cgroup():
    """A v1 memory cgroup of our own; yields a function that sets its limit (MB)."""
    if os.geteuid() != 0 or not os.access(V1_MEMORY, os.W_OK):
        pytest.skip("needs root and a writable cgroup v1 memory controller")
    folder = V1_MEMORY / f"coursekit-test-{uuid.uuid4().hex[:8]}"
    folder.mkdir()

    def limit(mb: int) -> Path:
        (folder / "memory.limit_in_bytes").write_text(str(mb << 20))
        return folder

    yield limit
    for pid in (folder / "cgroup.procs").read_text().split():  # nothing should be left
        try:
            os.kill(int(pid), 9)
        except OSError:
            pass
    folder.rmdir()


def _otter_run_in(folder: Path, zip_path: Path, notebook: Path, out: Path) -> tuple[int, str, dict | None]:
    out.mkdir(parents=True, exist_ok=True)
    script = ('echo $$ > "$1/cgroup.procs" && shift && exec "$@"')
    proc = subprocess.run(["sh", "-c", script, "sh", str(folder), sys.executable, "-m", "otter", "run",
                           "-a", str(zip_path), "-o", str(out), "--no-logo", str(notebook)],
                          capture_output=True, text=True, cwd=out, timeout=600)
    results = out / "results.json"
    data = json.loads(results.read_text()) if results.is_file() else None
    return proc.returncode, proc.stdout + proc.stderr, data


@pytest.mark.slow
def test_a_container_too_small_says_so_instead_of_being_killed(memory_cgroup, built, tmp_path):
    rc, log, results = _otter_run_in(memory_cgroup(768), built["zip"], built["solutions"], tmp_path / "out")
    assert results is not None, f"no results.json (exit {rc}): {log[-1500:]}"
    assert question_scores(results) == {q: 0.0 for q in FULL}
    assert "could not be graded" in results["tests"][0]["output"]
    lines = [ln for ln in log.splitlines() if ln.startswith("coursekit: ")]
    assert len(lines) == 1 and "allows 768 MB" in lines[0] and "Autograder Settings" in lines[0], log[-1500:]


@pytest.mark.slow
def test_a_container_big_enough_grades_in_full(memory_cgroup, built, tmp_path):
    rc, log, results = _otter_run_in(memory_cgroup(2048), built["zip"], built["solutions"], tmp_path / "out")
    assert results is not None, f"no results.json (exit {rc}): {log[-1500:]}"
    assert question_scores(results) == FULL
