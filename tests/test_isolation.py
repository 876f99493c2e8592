"""Acceptance tests for the sandbox that runs student code: what escapes it, end to end.

Every attack is a submission (the release notebook with extra cells) graded the way a TA
or Gradescope grades: `coursekit grade` (as root, and as an ordinary user), `otter run`
with the built zip, `nbgrader autograde`. The outcome of an attack is encoded in what the
grader writes, never in how the sandbox is built:

- a *probe* cell sets `LEAKED = True` when it could read, see or reach something it must
  not; the submission's `lookup` returns the right answer only `if LEAKED`, otherwise it
  raises NotImplementedError. A probe that is kept out therefore scores lookup 0 (and
  retrieve/forward/training full marks, 7 of 12); a leak shows up as lookup 5.
  `TestProbes` runs every probe on the host first, where each must detect its leak, so a
  broken probe cannot pass for a working sandbox;
- attacks on the grader itself (hostile frames in its channel, inherited descriptors,
  links and FIFOs left in a job folder of the host,
  processes left behind) must leave host files unchanged, leave no process alive, and
  leave every row of grades.csv in place with the scores of the code without the attack:
  the untouched stub 0, the reference solution 12.

Student code here may kill every process it can signal: run this file inside a PID
namespace (`unshare --pid --fork --mount-proc .venv/bin/python -m pytest ...`) as root.
The grade runs are batched (one `coursekit grade` per group of attacks, module-scoped
fixtures), so the whole file takes a few minutes.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import (A as ASSIGNMENT, COURSE, FULL, GATED_LOOKUP, NOT_LEAKED, QUESTIONS, REF_FORWARD,
                           REF_RETRIEVE, RELEASE, Run, SPAWNED, Spec, WRONG_LOOKUP, WRONG_LOOKUP_FAILS, ZERO,
                           grade, nbgrader_scores, new_token, probe_cell, probe_spec, ref, run_cmd, scores,
                           write_nb)

from tests.attacks.probes import (CHECKS_PY, ENV_PROBE, ENV_TOKEN, KILL_PARENT, Listener, attack_cell, batch_tag,
                                  end_survivors, fd_cell, flag_probe, network_probe, read_probe, read_probes,
                                  snoop_probe, survivor_cell, survivor_evidence)

pytestmark = pytest.mark.slow  # end to end; `make test-fast` skips it

REPO = COURSE.root
A = ASSIGNMENT.name
STUDENT_USER = "ckstudent_ta"


@pytest.fixture(scope="module", autouse=True)
def _orphan_reaper():
    """Inside `unshare --pid --fork` pytest is PID 1, so processes orphaned by the attacks
    (and by the sandbox) become our children; reap the unprivileged ones, never our own
    subprocesses, so that zombies do not pile up against the sandbox's process limit."""
    if os.getpid() != 1:
        yield
        return
    stop = threading.Event()

    def reap() -> None:
        while not stop.wait(0.05):
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or int(entry) in SPAWNED:
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    owner = os.stat(f"/proc/{entry}").st_uid
                except (OSError, IndexError):
                    continue
                if fields[0] == "Z" and fields[1] == "1" and owner != 0:
                    try:
                        os.waitpid(int(entry), os.WNOHANG)
                    except ChildProcessError:
                        pass

    thread = threading.Thread(target=reap, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def _file_state(path: Path) -> tuple:
    info = os.lstat(path)
    content = path.read_bytes() if stat.S_ISREG(info.st_mode) else b""
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), content


# --- the batches -----------------------------------------------------------------------

@dataclass
class Batch:
    run: Run
    token: str
    paths: dict[str, Path] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def robustness(tmp_path_factory) -> Batch:
    """Classes 1 and 3 in one `coursekit grade` (--jobs 2): inherited descriptors and
    hostile frames in the job's channel, beside the reference and the stub."""
    tmp = tmp_path_factory.mktemp("robustness")
    token = new_token()
    subs = tmp / "subs"
    fd_marker = tmp / "PWNED-fd"
    # Graded in this order (two at a time), so that what only a hang or a crash of the whole
    # batch could hide (the marker) is graded first.
    groups = {
        "1-plain": {"reference": ref(), "stub": Spec()},
        "2-fds": {
            # pickle frames into every inherited descriptor (a parent that unpickles them runs code)
            "fd_pickle": ref(after={"lookup": fd_cell(fd_marker)}),
        },
        "3-hostile": {
            # a well-formed `done` frame into the channel while the cells still run
            "early_done": ref(after={"lookup": attack_cell("early_done")}),
            # junk (a 2 GB length header, binary noise) into every inherited descriptor
            "fd_junk": ref(after={"lookup": fd_cell(None)}),
        },
    }
    for group, specs in groups.items():
        for name, spec in specs.items():
            write_nb(subs / group, name, spec)
    run = grade([subs / group for group in groups], tmp / "out")
    return Batch(run, token, paths={"fd_marker": fd_marker})


# Host files the job-folder attacks link to: owned by neither root nor a sandbox uid, so
# that a chown, a chmod or a write through a link shows.
VICTIM_OWNER = (65534, 65534)
VICTIM_MODE = 0o640


@pytest.fixture(scope="module")
def job_folder(tmp_path_factory) -> Batch:
    """Class 2 in one `coursekit grade` (--jobs 1) at the `landlock` level, where the job
    folder is a folder of the host that the trusted side creates and removes: links to
    host files and a FIFO planted in it, each followed by a crash (a fresh folder)."""
    tmp = tmp_path_factory.mktemp("job-folder")
    tmp.chmod(0o755)
    token = new_token()
    victims = {}
    for name in ("a", "b"):
        victims[name] = tmp / f"victim-{name}"
        victims[name].write_text(f"victim {name} {token}\n")
        os.chown(victims[name], *VICTIM_OWNER)
        victims[name].chmod(VICTIM_MODE)
    states = {name: _file_state(path) for name, path in victims.items()}
    dev_zero = _file_state(Path("/dev/zero"))
    subs = tmp / "subs"
    links = {"planted-a": str(victims["a"]), "planted-b": str(victims["b"]), "planted-zero": "/dev/zero"}
    write_nb(subs, "planted_fifo", ref(after={"lookup": attack_cell("planted_fifo")}))
    write_nb(subs, "planted_links", ref(after={"lookup": attack_cell("planted_links", LINKS=links)}))
    write_nb(subs, "reference", ref())
    run = grade(subs, tmp / "out", jobs=1, env_extra={"COURSEKIT_REFUSE": "namespaces"})
    after_zero = _file_state(Path("/dev/zero"))
    if after_zero[:3] != dev_zero[:3]:  # put the machine back
        os.chown("/dev/zero", dev_zero[0], dev_zero[1])
        os.chmod("/dev/zero", dev_zero[2])
    return Batch(run, token, paths=victims,
                 extra={"before": states, "after": {n: _file_state(p) for n, p in victims.items()},
                        "dev_zero": (dev_zero, after_zero)})


@pytest.fixture(scope="module")
def listener():
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture(scope="module")
def decoy():
    """A host process whose command line names a classmate's notebook."""
    token = new_token()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)",
                             f"/tmp/ck-decoy-{token}/classmate.ipynb"])
    SPAWNED.add(proc.pid)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def confidentiality(tmp_path_factory, listener, decoy) -> Batch:
    """Classes 5-8 (and 12's isolation column) in one `coursekit grade` (--jobs 2), with
    COURSEKIT_TEST_TOKEN in the grader's environment. The submissions lie in a folder every
    user may read (as a TA's folder often is), so reading a classmate's is up to the sandbox."""
    token = new_token()
    base = Path(f"/tmp/ck-iso-{token}")
    subs = base / "subs"
    subs.mkdir(parents=True)
    base.chmod(0o755)
    subs.chmod(0o755)
    classmate = write_nb(subs, "stub", Spec())
    leftover = f"ck-leftover-{uuid.uuid4().hex}"
    specs = {name: probe_spec(body) for name, body in read_probes(classmate).items()}
    specs.update({
        # sees the grader's environment variable
        "environment": probe_spec(ENV_PROBE),
        # connects to a listener on the host's loopback and sends 2 KB
        "network": probe_spec(network_probe(listener.port)),
        # leaves a file in /tmp and in its working folder
        "tmp_leftover": ref(after={"lookup": attack_cell("tmp_leftover", CK_NAME=leftover)}),
        "reference": ref(),
    })
    for name, spec in specs.items():
        write_nb(subs, name, spec)
    for path in subs.iterdir():
        path.chmod(0o644)
    out = tmp_path_factory.mktemp("confidentiality") / "out"
    run = grade(subs, out, env_extra=dict([ENV_TOKEN]))
    yield Batch(run, token, paths={"classmate": classmate, "leftover": Path("/tmp") / leftover},
                extra={"listener": listener})
    shutil.rmtree(base, ignore_errors=True)
    Path("/tmp", leftover).unlink(missing_ok=True)


def survivor_batch(tmp: Path, env_extra: dict | None = None) -> Batch:
    """Class 4 (and 12's fallback): a survivor graded first, then a probe that looks for what
    it left, a reader of the hidden checks, the stub and the reference (--jobs 1, in this
    order), then the same command again."""
    token = new_token()
    marker = f"ck-survivor-{token}"
    subs = tmp / "subs"
    tag = batch_tag(token)
    # leaves a re-forking process that tampers with later jobs of this batch
    write_nb(subs, "a_survivor", ref(after={"forward": survivor_cell(marker, "jobs", token)}))
    # looks for the flag the survivor leaves where it could read checks.py
    write_nb(subs, "b_collector", Spec(GATED_LOOKUP, REF_RETRIEVE, REF_FORWARD,
                                       after={"lookup": probe_cell(flag_probe(token)),
                                              "retrieve": tag["lookup"]}))
    # reads the repository's checks.py itself
    write_nb(subs, "c_read_checks", Spec(GATED_LOOKUP, REF_RETRIEVE, REF_FORWARD,
                                         after={"lookup": probe_cell(read_probe(CHECKS_PY)),
                                                "retrieve": tag["lookup"]}))
    write_nb(subs, "d_stub", Spec(after=tag))
    write_nb(subs, "e_reference", ref(after=tag))
    out = tmp / "out"
    first = grade(subs, out, jobs=1, env_extra=env_extra)
    alive = survivor_evidence(marker, token)
    csv_first = (out / "grades.csv").read_text() if (out / "grades.csv").is_file() else None
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / ".reports").glob("*.json")} \
        if (out / ".reports").is_dir() else {}
    time.sleep(1.0)  # a survivor that is still there has time to act before the rerun
    second = grade(subs, out, jobs=1, env_extra=env_extra)
    flags = sorted(str(p) for p in Path("/tmp").glob(f"ck-flag-{token}"))
    return Batch(first, token, extra={
        "marker": marker, "alive_after_first": alive, "second": second, "csv_first": csv_first,
        "stamps": stamps, "host_flags": flags})


def _cleanup_survivors(batch: Batch) -> None:
    end_survivors(batch.extra["marker"], batch.token)


@pytest.fixture(scope="module")
def survivors(tmp_path_factory) -> Batch:
    batch = survivor_batch(tmp_path_factory.mktemp("survivors"))
    yield batch
    _cleanup_survivors(batch)


@pytest.fixture(scope="module")
def landlock_fallback(tmp_path_factory) -> Batch:
    batch = survivor_batch(tmp_path_factory.mktemp("landlock"), env_extra={"COURSEKIT_REFUSE": "namespaces"})
    yield batch
    _cleanup_survivors(batch)


# --- probes work where nothing stops them ----------------------------------------------

class TestProbes:
    """Each probe detects its leak on the host (so a kept-out probe means a sandbox)."""

    @staticmethod
    def _leaks(body: str) -> bool:
        ns: dict = {}
        exec(probe_cell(body), ns)  # noqa: S102 - our own probe, on purpose
        return ns["LEAKED"]

    @pytest.mark.parametrize("name", sorted(read_probes(RELEASE)))
    def test_read_probe_detects(self, name, decoy):
        import attention_basics.checks  # noqa: F401 - as the grader's process has it

        ASSIGNMENT.data_path()  # the cache exists (a grade run makes it)

        assert self._leaks(read_probes(RELEASE)[name])

    def test_environment_probe_detects(self, monkeypatch):
        monkeypatch.setenv(*ENV_TOKEN)
        assert self._leaks(ENV_PROBE)

    def test_network_probe_detects(self):
        lst = Listener()
        try:
            assert self._leaks(network_probe(lst.port))
            deadline = time.time() + 5
            while len(lst.received) < 2048 and time.time() < deadline:
                time.sleep(0.05)
            assert len(lst.received) == 2048
        finally:
            lst.close()

    def test_flag_and_snoop_probes_detect(self):
        token = new_token()
        flag = Path("/tmp") / f"ck-flag-{token}"
        flag.write_text("x")
        try:
            assert self._leaks(flag_probe(token))
        finally:
            flag.unlink()
        assert not self._leaks(flag_probe(new_token()))
        assert self._leaks(snoop_probe([str(REPO / "coursekit")]))

    def test_a_probe_that_fails_reads_not_leaked(self):
        assert not self._leaks("def probe():\n    raise OSError('denied')\n")
        assert not self._leaks(read_probe(RELEASE).replace(str(RELEASE), "/nonexistent"))


# --- 1. inherited file descriptors ------------------------------------------------------

class TestFdEscape:
    def test_pickle_written_into_inherited_fds_is_never_loaded(self, robustness):
        robustness.run.scores("fd_pickle")  # graded
        assert not robustness.paths["fd_marker"].exists(), (
            "a process of the grader unpickled what student code wrote into an inherited fd")

    def test_every_row_and_the_right_scores(self, robustness):
        run = robustness.run
        assert run.rc == 0 and not run.timed_out, run.why()
        assert set(run.rows) == {"fd_pickle", "fd_junk", "early_done", "reference", "stub"}, run.why()
        assert run.scores("reference") == FULL
        assert run.scores("stub") == ZERO
        # the cell that wrote into the channel is skipped; the rest of its code is graded
        assert run.scores("fd_pickle") == FULL
        assert run.scores("fd_junk") == FULL


# --- 2. symlinks and FIFOs in the job folder --------------------------------------------

class TestJobFolderTricks:
    def test_graded_at_the_level_with_a_host_job_folder(self, job_folder):
        run = job_folder.run
        assert run.rc == 0 and not run.timed_out, run.why()
        levels = {name: row.get("isolation") for name, row in run.rows.items()}
        assert levels == dict.fromkeys(("planted_fifo", "planted_links", "reference"), "landlock"), levels

    @pytest.mark.parametrize("victim", ["a", "b"])
    def test_host_file_behind_a_symlink_unchanged(self, job_folder, victim):
        job_folder.run.scores("planted_links")  # graded
        assert job_folder.extra["after"][victim] == job_folder.extra["before"][victim], (
            f"the grader followed a student's symlink onto victim-{victim} (owner, group, mode, content)")

    def test_dev_zero_unchanged(self, job_folder):
        before, after = job_folder.extra["dev_zero"]
        assert after[:3] == before[:3], "the grader chowned/chmodded /dev/zero through a student's symlink"

    def test_every_row_with_the_right_scores(self, job_folder):
        run = job_folder.run
        assert run.scores("reference") == FULL, run.why()
        # a crash after planting: the cell is skipped, the rest graded in a fresh folder
        assert run.scores("planted_links") == FULL
        assert run.scores("planted_fifo") == FULL


# --- 3. hostile frames in the job's channel ---------------------------------------------

class TestHostileFrames:
    def test_a_job_cannot_end_its_grading_early(self, robustness):
        run = robustness.run
        assert run.rc == 0 and not run.timed_out, run.why()
        assert run.scores("early_done") == FULL, "a `done` frame from a cell ended the grading"


# --- 4. processes that outlive their job --------------------------------------------------

class TestSurvivors:
    def test_stub_and_reference_graded_after_a_survivor(self, survivors):
        run = survivors.run
        assert run.rc == 0 and not run.timed_out, run.why()
        assert run.scores("d_stub") == ZERO, "a survivor of an earlier job changed the stub's grade"
        assert run.scores("e_reference") == FULL
        assert run.scores("a_survivor") == FULL  # leaving a process behind costs nothing by itself

    def test_survivor_left_nothing_for_later_jobs(self, survivors):
        assert survivors.run.scores("b_collector") == NOT_LEAKED
        assert survivors.run.scores("c_read_checks") == NOT_LEAKED
        assert survivors.extra["host_flags"] == []

    def test_rerun_reuses_reports_and_gives_the_same_csv(self, survivors):
        second = survivors.extra["second"]
        assert second.rc == 0, second.why()
        assert survivors.extra["csv_first"] is not None
        assert (survivors.run.out / "grades.csv").read_text() == survivors.extra["csv_first"]
        now = {p.name: p.stat().st_mtime_ns for p in (survivors.run.out / ".reports").glob("*.json")}
        assert now == survivors.extra["stamps"]  # nothing regraded, nothing rewritten

    def test_no_process_of_the_attack_alive(self, survivors):
        assert survivors.extra["alive_after_first"] == [], "survivor processes outlived the grade run"
        assert survivor_evidence(survivors.extra["marker"], survivors.token) == []


# --- 5. network ---------------------------------------------------------------------------

class TestNetwork:
    def test_nothing_received_on_the_loopback(self, confidentiality):
        confidentiality.run.scores("reference")  # graded
        time.sleep(0.5)
        lst = confidentiality.extra["listener"]
        assert (lst.connections, bytes(lst.received)) == (0, b"")

    def test_connect_probe_not_leaked(self, confidentiality):
        assert confidentiality.run.scores("network") == NOT_LEAKED


# --- 6. reading what it must not -------------------------------------------------------------

class TestReading:
    @pytest.mark.parametrize("name", sorted(read_probes(RELEASE)))
    def test_not_leaked(self, confidentiality, name):
        assert confidentiality.run.scores(name) == NOT_LEAKED, f"{name}: the probe leaked (lookup 5)"

    def test_reference_and_stub(self, confidentiality):
        assert confidentiality.run.scores("reference") == FULL, confidentiality.run.why()
        assert confidentiality.run.scores("stub") == ZERO


# --- 7. environment --------------------------------------------------------------------------

class TestEnvironment:
    def test_grader_environment_not_visible(self, confidentiality):
        assert confidentiality.run.scores("environment") == NOT_LEAKED


# --- 8. /tmp leftovers -----------------------------------------------------------------------

class TestTmpLeftovers:
    def test_no_leftover_in_host_tmp(self, confidentiality):
        confidentiality.run.scores("tmp_leftover")  # graded
        name = confidentiality.paths["leftover"].name
        found = [str(p) for pattern in (name, f"*/{name}", f"*/*/{name}", f"*/*/*/{name}")
                 for p in Path("/tmp").glob(pattern)]
        assert found == []

    def test_leftover_writer_gets_full_marks(self, confidentiality):
        assert confidentiality.run.scores("tmp_leftover") == FULL


# --- 9. graded by an ordinary user -----------------------------------------------------------

def _readable_by_others(path: Path) -> bool:
    try:
        path = path.resolve()
        if not path.stat().st_mode & stat.S_IROTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])
    except OSError:
        return False


@pytest.fixture(scope="module")
def as_user() -> Batch:
    """`coursekit grade` run by an ordinary user, twice; survivors rewrite stored reports."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create the test user")
    if not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("useradd or setpriv missing")
    venv = REPO / ".venv"
    for path in (venv if venv.exists() else Path(sys.prefix), Path(sys.executable).resolve().parent,
                 Path(os.__file__).parent, REPO):
        if not _readable_by_others(path):
            pytest.skip(f"{path} is not readable by other users: an ordinary user cannot run the grader")
    try:
        pw = pwd.getpwnam(STUDENT_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", STUDENT_USER], check=True, capture_output=True)
        pw = pwd.getpwnam(STUDENT_USER)
    home = Path(pw.pw_dir)
    home.mkdir(exist_ok=True)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    token = new_token()
    secret = home / "secret.txt"
    secret_text = f"secret {token}\n"
    secret.write_text(secret_text)
    secret.chmod(0o600)
    os.chown(secret, pw.pw_uid, pw.pw_gid)
    work = home / f"ck-{token}"
    subs, out = work / "subs", work / "out"
    marker = f"ck-survivor-{token}"
    write_nb(subs / "1", "secret_reader", probe_spec(attack_cell(
        "read_and_append_secret", CK_SECRET=str(secret), CK_SECRET_TEXT=secret_text)))  # reads and appends to the user's ~/secret.txt
    # leaves a process that rewrites the stored reports to full marks
    write_nb(subs / "1", "survivor_reports", ref(after={"forward": survivor_cell(
        marker, str(out / ".reports"), token)}))
    write_nb(subs / "1", "stub", Spec())
    write_nb(subs / "1", "wrong", Spec(WRONG_LOOKUP, REF_RETRIEVE, REF_FORWARD))  # no softmax
    write_nb(subs / "1", "reference", ref())
    # last (a grader that dies with its worker would lose the rest of the batch today)
    write_nb(subs / "2", "kill_parent", ref(after={"retrieve": KILL_PARENT}))  # kills its parent process
    out.mkdir(parents=True)
    for path in [work, *work.rglob("*")]:
        os.chown(path, pw.pw_uid, pw.pw_gid)

    ASSIGNMENT.data_path()  # the cached data slice exists (the user cannot write the repository)
    prefix = ("setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "env",
              f"HOME={home}", f"USER={STUDENT_USER}", f"LOGNAME={STUDENT_USER}")
    folders = [subs / "1", subs / "2"]
    first = grade(folders, out, prefix=prefix)
    time.sleep(1.5)  # a survivor that is still there has time to act before the rerun
    second = grade(folders, out, prefix=prefix)
    batch = Batch(first, token, paths={"secret": secret}, extra={
        "second": second, "secret_text": secret_text, "marker": marker,
        "alive": survivor_evidence(marker, token)})
    yield batch
    end_survivors(marker, token)
    shutil.rmtree(work, ignore_errors=True)
    secret.unlink(missing_ok=True)


class TestOrdinaryUser:
    def test_secret_unchanged_and_not_leaked(self, as_user):
        assert as_user.paths["secret"].read_text() == as_user.extra["secret_text"]
        assert as_user.run.scores("secret_reader") == NOT_LEAKED, as_user.run.why()

    def test_kill_parent_still_writes_every_row(self, as_user):
        run = as_user.run
        assert run.rc == 0, run.why()
        assert set(run.rows) == {"secret_reader", "survivor_reports", "kill_parent", "stub", "wrong",
                                 "reference"}, run.why()
        assert run.scores("kill_parent") == FULL
        assert run.scores("reference") == FULL

    def test_survivor_cannot_rewrite_stored_reports(self, as_user):
        wrong = scores(WRONG_LOOKUP_FAILS)
        for run in (as_user.run, as_user.extra["second"]):
            assert run.scores("stub") == ZERO, run.why()
            assert run.scores("wrong") == wrong
            assert run.scores("reference") == FULL

    def test_no_process_of_the_attack_alive(self, as_user):
        assert as_user.extra["alive"] == []


# --- 10. otter run with the built autograder zip --------------------------------------------

@pytest.fixture(scope="module")
def otter_attack(built, tmp_path_factory) -> Batch:
    """One `otter run`: a probe for the autograder's files gates lookup."""
    tmp = tmp_path_factory.mktemp("otter")
    token = new_token()
    spec = Spec(GATED_LOOKUP, REF_RETRIEVE, REF_FORWARD, after={
        "lookup": probe_cell(snoop_probe([]))})  # looks for the autograder's files
    sub = tmp / "sub" / f"{A}.ipynb"
    write_nb(sub.parent, A, spec, release=built["release"])
    out = tmp / "out"
    out.mkdir()
    run = run_cmd([sys.executable, "-m", "otter", "run", "-a", str(built["zip"]), "-o", str(out),
                   "--no-logo", str(sub)], cwd=out, timeout=400)
    run.out = out
    results = out / "results.json"
    data = json.loads(results.read_text()) if results.is_file() else None
    return Batch(run, token, extra={"results": data})


class TestOtterRun:
    def test_results_have_the_scores_of_the_code_without_the_attack(self, otter_attack):
        results = otter_attack.extra["results"]
        assert results is not None, otter_attack.run.why()
        got = {t["name"]: t.get("score") for t in results["tests"] if t["name"] in QUESTIONS}
        assert tuple(got.get(q) for q in QUESTIONS) == NOT_LEAKED, got


# --- 11. nbgrader autograde --------------------------------------------------------------------

@pytest.fixture(scope="module")
def nbgrader_course(built, tmp_path_factory) -> Batch:
    """One `nbgrader autograde` of three students: a survivor first, then a stub and the
    reference (nbgrader grades them in name order)."""
    root = tmp_path_factory.mktemp("nbgrader-iso") / "course"
    shutil.copytree(built["nbgrader_course"], root)
    env = dict(os.environ)
    gen = run_cmd([sys.executable, "-m", "nbgrader", "generate_assignment", A], cwd=root, env=env, timeout=300)
    assert gen.rc == 0, gen.why()
    release = root / "release" / A / f"{A}.ipynb"
    token = new_token()
    marker = f"ck-survivor-{token}"
    tag = batch_tag(token)
    # a_survivor leaves a re-forking process that tampers with the later students' jobs
    subs = {"a_survivor": ref(after={"forward": survivor_cell(marker, "jobs", token)}),
            "b_stub": Spec(after=tag), "c_reference": ref(after=tag)}
    for student, spec in subs.items():
        write_nb(root / "submitted" / student / A, A, spec, release=release)
    run = run_cmd([sys.executable, "-m", "nbgrader", "autograde", A], cwd=root, env=env, timeout=400)
    batch = Batch(run, token, extra={"marker": marker, "alive": survivor_evidence(marker, token),
                                     "root": root})
    yield batch
    _cleanup_survivors(batch)


class TestNbgrader:
    def test_survivor_before_stub_and_reference(self, nbgrader_course):
        run = nbgrader_course.run
        assert run.rc == 0, run.why()
        scores = nbgrader_scores(nbgrader_course.extra["root"], strict=False)
        assert scores.get("b_stub") == ZERO, scores
        assert scores.get("c_reference") == FULL, scores

    def test_no_process_of_the_attack_alive(self, nbgrader_course):
        assert nbgrader_course.extra["alive"] == []


# --- 12. the isolation level --------------------------------------------------------------------

class TestIsolationLevel:
    def test_every_row_reads_namespaces(self, confidentiality):
        run = confidentiality.run
        assert run.rows, run.why()
        levels = {name: row.get("isolation") for name, row in run.rows.items()}
        assert set(levels.values()) == {"namespaces"}, levels

    def test_refused_namespaces_fall_back_to_landlock(self, landlock_fallback):
        run = landlock_fallback.run
        assert run.rc == 0 and not run.timed_out, run.why()
        levels = {name: row.get("isolation") for name, row in run.rows.items()}
        assert set(levels.values()) == {"landlock"}, levels
        assert run.scores("c_read_checks") == NOT_LEAKED, "read the repository's checks.py"
        assert run.scores("b_collector") == NOT_LEAKED, "a survivor reached checks.py and said so"
        assert landlock_fallback.extra["host_flags"] == []
        assert run.scores("d_stub") == ZERO
        assert run.scores("e_reference") == FULL
        assert landlock_fallback.extra["alive_after_first"] == []

    def test_required_isolation_refused_stops_before_grading(self, tmp_path):
        write_nb(tmp_path / "subs", "stub", Spec())
        out = tmp_path / "out"
        run = grade(tmp_path / "subs", out, env_extra={"COURSEKIT_REFUSE": "namespaces"},
                    args=("--require-isolation", "namespaces"), timeout=120)
        lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
        assert run.rc not in (0, None), run.why()
        assert len(lines) == 1 and "isolation" in lines[0], lines
        assert "usage:" not in lines[0] and "unrecognized" not in lines[0], lines
        assert not (out / "grades.csv").exists()
