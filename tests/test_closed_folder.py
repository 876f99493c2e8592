"""A project under a folder other users cannot enter still grades at the `landlock` level.

Where namespaces are refused, the job runs as the sandbox uid on the host's folders and
must reach the Python runtime through them. Under `mktemp -d` (0700) or a 0750 home, it
could not: every landlock-level run stopped with "the sandbox user cannot read the Python
runtime". The grader (root) now opens each closed folder on the way to the sandbox group
for search only (coursekit/sandbox/traverse.py), and Landlock still confines what a job
reads. Here a venv inside a 0700 folder (its site-packages on `sys.path`, with this
project's packages added to it) grades a reference and a stub with namespaces refused; at
the `process` level (no Landlock to confine the way through) it is still refused.
Run as root inside `unshare --pid --fork --mount-proc`.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from coursekit.cli import CANNOT_GRADE
from coursekit.sandbox import traverse
from tests.helpers import FULL, Spec, ZERO, read_rows, ref, run_cmd, write_nb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def closed_python():
    """A Python whose venv lies in a fresh 0700 folder (as `mktemp -d` makes it)."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox uid exists only when the grader is root")
    closed = Path(tempfile.mkdtemp(prefix="ck-closed-"))
    venv = closed / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    inner = next((venv / "lib").glob("python3*/site-packages"))
    ours = next(p for p in site.getsitepackages() if p.endswith("site-packages"))
    (inner / "project.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    os.chmod(closed, 0o700)
    assert not os.stat(closed).st_mode & 0o001
    yield venv / "bin" / "python", closed
    shutil.rmtree(closed, ignore_errors=True)


def _grade(python: Path, subs: Path, out: Path, refuse: str):
    env = {**os.environ, "COURSEKIT_REFUSE": refuse}
    run = run_cmd([str(python), "-m", "coursekit", "grade", str(subs), "--out", str(out),
                   "--jobs", "1", "--quiet"], env=env)
    run.rows = read_rows(out)
    return run


def test_closed_folder_grades_at_the_landlock_level(closed_python, tmp_path):
    python, closed = closed_python
    write_nb(tmp_path / "subs", "reference", ref())
    write_nb(tmp_path / "subs", "stub", Spec())
    run = _grade(python, tmp_path / "subs", tmp_path / "out", "namespaces")
    assert run.rc == 0, run.why()
    assert {r["isolation"] for r in run.rows.values()} == {"landlock"}
    assert run.scores("reference") == FULL and run.scores("stub") == ZERO
    assert closed in [Path(f) for f in traverse.closed_folders([str(python)])]  # still closed to others


def test_closed_folder_is_refused_at_the_process_level(closed_python, tmp_path):
    python, _ = closed_python
    write_nb(tmp_path / "subs", "stub", Spec())
    run = _grade(python, tmp_path / "subs", tmp_path / "out", "namespaces,landlock")
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.strip()]
    assert run.rc == CANNOT_GRADE, run.why()
    assert len(lines) == 1 and "cannot read the Python runtime" in lines[0], lines


def test_grant_adds_search_for_the_sandbox_group_only(tmp_path):
    folder = tmp_path / "closed"
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o700)
    try:
        traverse.grant(str(folder))
    except OSError as exc:
        pytest.skip(f"this filesystem takes no ACL ({exc.strerror})")
    entries = traverse._entries(str(folder))
    assert (traverse.GROUP, 1, traverse.SANDBOX_GID) in entries
    assert (traverse.OTHER, 0, traverse._UNDEFINED) in entries
    assert os.stat(folder).st_mode & 0o777 == 0o710  # the mask: search for the group class only


def test_grant_refuses_a_folder_with_named_entries(tmp_path):
    """Widening the mask would let every named entry search too: such a folder is refused."""
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o700)
    try:
        traverse.grant(str(folder), gid=60998)  # a named entry of someone else's
    except OSError as exc:
        pytest.skip(f"this filesystem takes no ACL ({exc.strerror})")
    with pytest.raises(OSError, match="ACL entries of its own"):
        traverse.grant(str(folder))


def test_the_closed_folder_stays_closed_to_other_users(closed_python):
    """After the grant, an ordinary user (nobody) still cannot pass the closed folder."""
    python, closed = closed_python
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "ls", str(closed / "venv")], capture_output=True, text=True)
    assert probe.returncode != 0 and "Permission denied" in probe.stderr
