"""`coursekit grade --cluster`: grading on a real Dask scheduler with two worker processes.

The cluster runs on loopback as separate processes started the way the README says
(`dask scheduler`, `dask worker --nthreads 1`): the same grades.csv as a local
`--jobs 2` run, a rerun that grades nothing, and a worker killed (with its sandbox)
in the middle of a batch without losing a row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.helpers import A, COURSE, write_corpus

pytestmark = pytest.mark.slow

RELEASE = A.release_dir / f"{A.name}.ipynb"
DASK = Path(sys.executable).parent / "dask"
NAMES = ["c01_at_operator", "c04_einsum", "w01_softmax_wrong_dim", "w06_retrieve_mean",
         "w15_stubs_left_in"]


# --- the cluster: a scheduler and two workers, each its own process group -------------

def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process, its process group and every descendant (the sandbox's zygote and
    jobs run in sessions of their own, so the group alone does not reach them)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=30)
    psutil.wait_procs(family, timeout=30)


@dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)


def _start_cluster(folder: Path, names: tuple[str, ...]) -> Cluster:
    """`dask scheduler` and one `dask worker --nthreads 1` per name, as the README starts
    them, each in a process group of its own; killed again by `_stop_cluster`."""
    info = folder / "scheduler.json"
    # the workers run this checkout, whichever coursekit the venv has installed
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(COURSE.root), os.environ.get("PYTHONPATH")]))}

    def start(*args: str, log: str) -> subprocess.Popen:
        with open(folder / log, "wb") as out:
            return subprocess.Popen([str(DASK), *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=folder, start_new_session=True)  # a group of its own

    scheduler = start("scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(info),
                      "--no-dashboard", log="scheduler.log")
    running = Cluster("", scheduler)
    try:
        deadline = time.time() + 60
        while not info.is_file() and time.time() < deadline:
            time.sleep(0.1)
        running.address = json.loads(info.read_text())["address"]
        for name in names:
            running.workers[name] = start(
                "worker", "--scheduler-file", str(info), "--nthreads", "1", "--no-dashboard",
                "--host", "127.0.0.1", "--name", name, "--local-directory", str(folder / name),
                log=f"{name}.log")
        from distributed import Client

        with Client(running.address, timeout=30) as client:
            client.wait_for_workers(len(names), timeout=120)
    except BaseException:
        _stop_cluster(running)
        raise
    return running


def _stop_cluster(running: Cluster) -> None:
    for proc in [*running.workers.values(), running.scheduler]:
        _kill_tree(proc)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    running = _start_cluster(tmp_path_factory.mktemp("dask"), ("w0", "w1"))
    try:
        yield running
    finally:
        _stop_cluster(running)


# --- the submissions and the local reference run -------------------------------------

@pytest.fixture(scope="module")
def subs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("subs")
    write_corpus(RELEASE, folder, NAMES)
    (folder / "broken.ipynb").write_text("{ not json")  # bad input, graded by a worker
    with open(folder / "huge.ipynb", "wb") as f:  # bad input refused before sending (sparse file)
        f.truncate((COURSE.rules.max_mb << 20) + 1)
    return folder


def _grade(subs: Path, out: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coursekit", "grade", str(subs), "--out", str(out),
                           "--quiet", *extra], cwd=COURSE.root, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def local_run(subs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    proc = _grade(subs, out, "--jobs", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _feedback(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "feedback").rglob("*"))
            if p.is_file()}


# --- the tests -------------------------------------------------------------------------

def test_cluster_grades_as_local_and_resumes(cluster, subs, local_run, tmp_path):
    out = tmp_path / "out"
    proc = _grade(subs, out, "--cluster", cluster.address, "--jobs", "5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--jobs is ignored" in proc.stderr
    # Same machine, same sandbox: every column agrees, the isolation level too.
    assert (out / "grades.csv").read_text() == (local_run / "grades.csv").read_text()
    assert _feedback(out) == _feedback(local_run)
    huge = next(r for r in csv.DictReader((out / "grades.csv").open()) if r["student"] == "huge")
    assert (huge["total"], huge["status"], huge["message"]) == (
        "0", "bad input", f"huge.ipynb is larger than {COURSE.rules.max_mb} MB")

    stamps = {p.name: p.stat().st_mtime_ns for p in (out / ".reports").glob("*.json")}
    assert len(stamps) == len(NAMES) + 2
    again = _grade(subs, out, "--cluster", cluster.address)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "grades.csv").read_text() == (local_run / "grades.csv").read_text()
    assert {p.name: p.stat().st_mtime_ns for p in (out / ".reports").glob("*.json")} == stamps


def test_unreachable_scheduler_is_one_line(subs, tmp_path, monkeypatch, capsys):
    from socket import socket

    from coursekit.batch import dask_executor
    from coursekit.cli import main

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 1)  # 10 s in real use
    with socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    assert main(["grade", str(subs), "--out", str(tmp_path / "out"), "--quiet", "--cluster", address]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"coursekit grade: cannot reach the Dask scheduler at {address} (")
    assert "Traceback" not in err
    assert main(["grade", str(subs), "--out", str(tmp_path / "out"), "--quiet", "--cluster", "nonsense"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "coursekit grade: 'nonsense' is not a scheduler address like tcp://HOST:8786")


def test_task_routing_for_gpus():
    from coursekit.batch.dask_executor import ClusterError, task_resources

    cpu, gpu = {"a": {}}, {"a": {}, "b": {"GPU": 1.0}}
    assert task_resources(cpu, "cpu") is None and task_resources(cpu, "auto") is None
    assert task_resources(gpu, "cpu") is None
    assert task_resources(gpu, "auto") == {"GPU": 1} and task_resources(gpu, "cuda") == {"GPU": 1}
    with pytest.raises(ClusterError, match="no connected Dask worker advertises a GPU"):
        task_resources(cpu, "cuda")


def test_gpu_workers_are_seen(monkeypatch):
    """What a worker started with `--resources GPU=1` advertises is what the routing reads."""
    from distributed import Client, LocalCluster

    from coursekit.batch.dask_executor import routing

    with LocalCluster(n_workers=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=":0",
                      resources={"GPU": 1}) as lc, Client(lc.scheduler_address) as client:
        for device, want in (("cpu", None), ("auto", {"GPU": 1}), ("cuda", {"GPU": 1})):
            assert routing(client, lc.scheduler_address, device) == want


@pytest.fixture
def in_process_cluster():
    """A scheduler and one worker thread inside this process: cheap, for what needs no grading."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=":0") as lc:
        yield lc.scheduler_address


def test_tasks_no_worker_can_take_become_error_rows(in_process_cluster, subs, tmp_path, monkeypatch):
    from coursekit.batch import dask_executor
    from coursekit.grade import grade_all

    monkeypatch.setattr(dask_executor, "WORKER_WAIT_S", 1)
    monkeypatch.setattr(dask_executor, "CHECK_EVERY_S", 0.2)
    monkeypatch.setattr(dask_executor, "task_resources", lambda workers, device: {"GPU": 1})  # none has one
    rows = dict(grade_all([subs], tmp_path / "out", progress=False, cluster=in_process_cluster))
    assert rows.pop("huge").status == "bad input"  # refused here, never sent
    assert {r.status for r in rows.values()} == {"error"}
    assert all("no Dask worker could take it for 1 s" in r.message for r in rows.values())
    assert len(list((tmp_path / "out" / ".reports").glob("*.json"))) == 1  # errors are not stored


def test_malformed_worker_reports_become_error_rows(in_process_cluster, subs, tmp_path, monkeypatch):
    """A worker's report that does not decode is that submission's error row; the others
    are graded and stored."""
    from coursekit.batch import dask_worker
    from coursekit.grade import grade_all
    from coursekit.report import Report, encode

    def fake_grade(self, version, name, data, digest):
        return {"c01_at_operator.ipynb": "{bad", "c04_einsum.ipynb": encode(Report(status="great"))
                }.get(name, encode(Report(isolation="fake")))

    monkeypatch.setattr(dask_worker.GraderPlugin, "grade", fake_grade)
    rows = dict(grade_all([subs], tmp_path / "out", progress=False, cluster=in_process_cluster))
    assert rows.pop("huge").status == "bad input"
    for name in ("c01_at_operator", "c04_einsum"):
        bad = rows.pop(name)
        assert bad.status == "error" and bad.message.startswith("the worker's report is malformed (the report")
    assert {(r.status, r.isolation) for r in rows.values()} == {("ok", "fake")}
    assert len(list((tmp_path / "out" / ".reports").glob("*.json"))) == len(rows) + 1


def test_require_isolation_holds_on_the_workers(in_process_cluster, subs, tmp_path, monkeypatch):
    from coursekit.grade import grade_all

    monkeypatch.setenv("COURSEKIT_REFUSE", "namespaces")  # this worker's sandbox: landlock at best
    rows = dict(grade_all([subs], tmp_path / "out", progress=False, require="namespaces",
                          cluster=in_process_cluster))
    assert rows.pop("huge").status == "bad input"
    assert {r.status for r in rows.values()} == {"error"}
    for r in rows.values():
        assert "cannot grade: isolation level" in r.message and "below the required 'namespaces'" in r.message
    assert len(list((tmp_path / "out" / ".reports").glob("*.json"))) == 1


def test_worker_refuses_damaged_or_unsafe_input():
    from coursekit.batch.dask_worker import GraderPlugin, WorkerRefused
    plugin = GraderPlugin(A.name, require=None)
    plugin.setup(worker=None)
    data = b"{}"
    digest = hashlib.sha256(data).hexdigest()
    from coursekit.batch.store import grader_version

    version = grader_version(COURSE.config_file, A.folder)
    with pytest.raises(WorkerRefused, match="sha256"):
        plugin.grade(version, "a.ipynb", data + b" ", digest)
    for name in ("../a.ipynb", "a/b.ipynb", "..", "", "a\0.ipynb", "x" * 300):
        with pytest.raises(WorkerRefused, match="file name"):
            plugin.grade(version, name, data, digest)
    with pytest.raises(WorkerRefused, match="version"):
        plugin.grade("0" * 16, "a.ipynb", data, digest)
    plugin.teardown(worker=None)


def _wait_for_grading(proc: subprocess.Popen, out: Path, client, address: str) -> int:
    """Wait until the batch has stored at least 3 reports and the worker at `address` is
    grading; the number stored then. (huge.ipynb is refused on the TA's side and
    broken.ipynb takes a warm grader no time: a third report means notebooks are run.)"""
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the batch ended too early: {proc.communicate()[1][-2000:]}")
        stored = len(list((out / ".reports").glob("*.json")))
        if stored >= 3 and client.processing([address]).get(address):
            return stored
        time.sleep(0.05)
    pytest.fail("the worker never started grading")


def test_lost_scheduler_is_one_line_and_no_error_rows(subs, local_run, cluster, tmp_path_factory):
    """Kill the scheduler in the middle of a batch: one line naming it and how many were
    not graded, exit TO_RETRY, rows only for what was graded (none `error`); a rerun on a
    live cluster grades the rest and gives the local run's grades.csv."""
    from distributed import Client

    doomed = _start_cluster(tmp_path_factory.mktemp("doomed"), ("d0",))
    out = tmp_path_factory.mktemp("lost") / "out"
    try:
        proc = subprocess.Popen([sys.executable, "-m", "coursekit", "grade", str(subs), "--out", str(out),
                                 "--quiet", "--cluster", doomed.address], cwd=COURSE.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with Client(doomed.address, timeout=30) as client:
            worker = next(iter(client.scheduler_info()["workers"]))
            stored = _wait_for_grading(proc, out, client, worker)
            _kill_tree(doomed.scheduler)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        _stop_cluster(doomed)
    rows = list(csv.DictReader((out / "grades.csv").open()))
    total = len(NAMES) + 2
    assert stored <= len(rows) < total and {r["status"] for r in rows} <= {"ok", "bad input"}
    assert proc.returncode == 75, stderr[-3000:]
    lost = [line for line in stderr.splitlines() if "Dask scheduler" in line]
    assert lost == [f"coursekit grade: lost the Dask scheduler at {doomed.address}: {total - len(rows)} "
                    f"submission(s) not graded; run the same command again to grade them"], stderr[-3000:]
    assert "Traceback" not in stderr and "FutureCancelledError" not in stderr + stdout
    assert len(stderr.splitlines()) <= 4, stderr[-3000:]  # isolation, the lost line, the retry line

    again = _grade(subs, out, "--cluster", cluster.address)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "grades.csv").read_text() == (local_run / "grades.csv").read_text()


def test_killed_worker_loses_nothing(cluster, subs, local_run, tmp_path):
    """SIGKILL one worker (nanny, worker, sandbox) while it grades: Dask reschedules its
    tasks on the other, and every row is the local run's. Runs last: it uses up a worker."""
    from distributed import Client

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "coursekit", "grade", str(subs), "--out", str(out), "--quiet",
           "--cluster", cluster.address]
    proc = subprocess.Popen(cmd, cwd=COURSE.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = cluster.workers["w0"]
    with Client(cluster.address, timeout=30) as client:
        address = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "w0")
        stored = _wait_for_grading(proc, out, client, address)
        assert stored < len(NAMES) + 2  # some submissions were still to be graded
        assert len(psutil.Process(victim.pid).children(recursive=True)) >= 2  # its worker and zygote
        _kill_tree(victim)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        assert len(client.scheduler_info()["workers"]) == 1
    assert (out / "grades.csv").read_text() == (local_run / "grades.csv").read_text()
