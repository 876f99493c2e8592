"""Grading in a Gradescope-like container whose refusals are the kernel's (issue 18).

`tests/container.py` starts the grader as Docker's defaults do — root without
CAP_SYS_ADMIN, moby's default seccomp profile — in Gradescope's `/autograder` layout.
COURSEKIT_REFUSE is never set: what the sandbox falls back to here is what the kernel
refused. The suite checks

- that the kernel really refuses (unshare, mount, setns, clone with namespace flags,
  clone3 -> ENOSYS; no CAP_SYS_ADMIN) and that the sandbox's level follows from those
  refusals alone: without the capability drop *and* the seccomp profile the same probe
  gets `namespaces`, with either one `landlock`;
- Gradescope's own run (`/autograder/run_autograder`, otter's `run_otter.py`): the
  untouched release 0/12, the solutions 12/12, results.json naming the level;
- a selection of the isolation suite's attacks, graded in one `coursekit grade` inside
  the container: they hold at the level the kernel allowed.

Runs as root with CAP_SYS_ADMIN on the host (skipped elsewhere). Creates an empty
`/autograder` folder on the host if there is none (only ever mounted over).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import (A as ASSIGNMENT, COURSE, FULL, GATED_LOOKUP, NOT_LEAKED, QUESTIONS, REF_FORWARD,
                           REF_RETRIEVE, RELEASE, SOLVED, Spec, ZERO, probe_spec, ref, write_nb)
from tests import container
from tests.attacks.probes import (CHECKS_PY, ENV_PROBE, ENV_TOKEN, Listener, Services, batch_tag, end_survivors,
                                  flag_probe, network_probe, read_probes, survivor_cell)

pytestmark = pytest.mark.slow  # containers, otter and a batch of attacks: ~2 minutes

REPO = COURSE.root
A = ASSIGNMENT.name
ATTACKS = Path(__file__).parent / "attacks" / "container"
WHY_NOT = container.host_can_make_containers()
if WHY_NOT:
    pytestmark = [pytestmark, pytest.mark.skip(reason=f"no container harness here: {WHY_NOT}")]


@pytest.fixture(scope="module")
def zip_path(built) -> Path:
    """The autograder built from this tree (never a zip left by an older `make build`)."""
    return built["zip"]


def _file_cell(name: str, call: str) -> str:
    """An attack program of tests/attacks/container as a notebook cell, then `call`."""
    return (ATTACKS / name).read_text() + "\n\n" + call + "\n"


def _file_probe(name: str, **params) -> Spec:
    """An attack program's `probe(**params)` into LEAKED; lookup is right only on a leak."""
    args = ", ".join(f"{k}={v!r}" for k, v in params.items())
    cell = _file_cell(name, f"try:\n    LEAKED = bool(probe({args}))\nexcept BaseException:\n"
                            "    LEAKED = False")
    return Spec(GATED_LOOKUP, REF_RETRIEVE, REF_FORWARD, after={"lookup": cell})


# --- the kernel refuses, and the level follows from it ----------------------------------

@pytest.fixture(scope="module")
def probes(zip_path, tmp_path_factory) -> dict[str, dict]:
    """`container.probe` inside: Docker's defaults, and each of the two refusals left out."""
    tmp = tmp_path_factory.mktemp("probes")
    variants = {"docker": {}, "caps only (no seccomp)": {"seccomp": False},
                "seccomp only (all caps)": {"keep_caps": True},
                "neither": {"keep_caps": True, "seccomp": False}}
    out = {}
    for i, (name, kw) in enumerate(variants.items()):
        result, run = container.probe_in_container(zip_path, tmp / str(i), **kw)
        assert result is not None, f"{name}: {run.why()}"
        out[name] = result
    return out


class TestTheKernelRefuses:
    def test_no_cap_sys_admin_only_dockers_capabilities(self, probes):
        status = probes["docker"]["status"]
        assert status["Uid"].split() == ["0"] * 4  # root, as on Gradescope
        for key in ("CapEff", "CapPrm", "CapBnd"):
            assert int(status[key], 16) == container.DOCKER_CAP_MASK, (key, status[key])
            assert "CAP_SYS_ADMIN" not in container.caps_of(status[key])
        assert int(status["CapInh"], 16) == 0 and int(status["CapAmb"], 16) == 0

    def test_mobys_seccomp_profile_is_loaded(self, probes):
        status = probes["docker"]["status"]
        assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "0", status  # as runc loads it

    def test_namespaces_and_mounts_are_refused(self, probes):
        calls = probes["docker"]["calls"]
        for call in ("unshare(CLONE_NEWNS)", "unshare(CLONE_NEWUSER)", "unshare(CLONE_NEWPID|CLONE_NEWNET)",
                     "mount(tmpfs)", "umount2(/autograder)", "setns(own mount ns)", "pivot_root",
                     "fsopen(tmpfs)", "open_tree(/)", "clone(CLONE_NEWNS)", "clone(CLONE_NEWUSER)"):
            assert calls[call] == "EPERM", (call, calls)
        assert calls["clone3"] == "ENOSYS"  # so that libc falls back to clone
        assert calls["clone()"] == "ok" and calls["socket(AF_INET)"] == "ok"
        assert calls["socket(AF_VSOCK)"] == "EPERM"

    def test_not_our_switch_and_gradescopes_layout(self, probes):
        for result in probes.values():
            assert result["COURSEKIT_REFUSE"] is None
        assert probes["docker"]["autograder_mount"] == "tmpfs"  # a mount point of the container's
        assert probes["docker"]["autograder"] == ["results", "run_autograder", "source", "submission",
                                                  "submission_metadata.json"]

    def test_the_sandbox_gets_landlock(self, probes):
        assert probes["docker"]["sandbox"] == {"level": "landlock", "layers": ["landlock", "seccomp", "uid"]}

    def test_each_refusal_alone_costs_the_namespaces(self, probes):
        """The level depends on the kernel's refusals: each of the two is enough to refuse
        the namespaces (EPERM from the capability check, or from seccomp)."""
        for name in ("caps only (no seccomp)", "seccomp only (all caps)"):
            assert probes[name]["calls"]["unshare(CLONE_NEWNS)"] == "EPERM", name
            assert probes[name]["sandbox"]["level"] == "landlock", (name, probes[name]["sandbox"])

    def test_without_either_refusal_the_level_is_namespaces(self, probes):
        neither = probes["neither"]
        assert neither["calls"]["unshare(CLONE_NEWNS)"] == "ok"
        assert "CAP_SYS_ADMIN" in container.caps_of(neither["status"]["CapEff"])
        assert neither["sandbox"]["level"] == "namespaces", neither["sandbox"]


# --- Gradescope's own run ----------------------------------------------------------------

@pytest.fixture(scope="module")
def gradescope(zip_path, tmp_path_factory) -> dict[str, container.ContainerRun]:
    """`/autograder/run_autograder` for the untouched release and the solutions, and the
    solutions once more in a container that refuses nothing (two containers at once)."""
    tmp = tmp_path_factory.mktemp("gradescope")
    release, solutions = ASSIGNMENT.release_dir / f"{A}.ipynb", ASSIGNMENT.solutions_dir / f"{A}.ipynb"
    uploads = {"release": (release, {}), "solutions": (solutions, {}),
               "solutions, nothing refused": (solutions, {"keep_caps": True, "seccomp": False})}

    def one(item):
        name, (notebook, kw) = item
        return container.gradescope(zip_path, notebook, tmp / name.replace(", ", "-").replace(" ", "_"), **kw)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(uploads, pool.map(one, uploads.items())))


def _scores(results: dict) -> tuple[float | None, ...]:
    got = {t["name"]: t.get("score") for t in results["tests"] if t["name"] in QUESTIONS}
    return tuple(got.get(q) for q in QUESTIONS)


class TestGradescope:
    @pytest.mark.parametrize("upload, want", [("release", ZERO), ("solutions", SOLVED)])
    def test_scores(self, gradescope, upload, want):
        run = gradescope[upload]
        assert run.rc == 0 and run.results is not None, run.why()
        assert _scores(run.results) == want, run.results
        assert run.results["score"] == sum(want)

    @pytest.mark.parametrize("upload, level", [("release", "landlock"), ("solutions", "landlock"),
                                               ("solutions, nothing refused", "namespaces")])
    def test_results_record_the_level_the_kernel_allowed(self, gradescope, upload, level):
        results = gradescope[upload].results
        assert results is not None, gradescope[upload].why()
        outputs = "\n".join(t.get("output", "") for t in results["tests"]) + str(results.get("output", ""))
        assert f"graded in the sandbox (isolation: {level})" in outputs, outputs
        assert _scores(results) == (ZERO if upload == "release" else SOLVED)


# --- the isolation suite's attacks, at that level -----------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def attacks(zip_path, tmp_path_factory):
    """One `coursekit grade --jobs 2` in the container: probes that must find nothing,
    attacks on the grader, a survivor (graded first) and what it tampers with."""
    token = uuid.uuid4().hex[:12]
    marker = f"ck-survivor-{token}"
    base = Path(f"/tmp/ck-container-{token}")  # readable by every user: only the sandbox keeps it out
    subs = base / "subs"
    (subs / "1").mkdir(parents=True)
    (subs / "2").mkdir()
    classmate = write_nb(subs / "2", "stub", Spec(after=batch_tag(token)))
    leftover = f"ck-leftover-{uuid.uuid4().hex}"
    listener = Listener()
    services = Services(base / "services")  # the host's local services (tests/attacks/local_services/)
    specs = {name: probe_spec(body) for name, body in read_probes(classmate).items()}
    for name in ("unix_path_socket", "abstract_socket", "proc_other_processes", "lab_needs"):
        specs[name] = Spec(GATED_LOOKUP, REF_RETRIEVE, REF_FORWARD, after={"lookup": services.probe(name)})
    specs.update({
        "environment": probe_spec(ENV_PROBE),  # the grader's environment (a token in it)
        "network": probe_spec(network_probe(listener.port)),  # the host's loopback
        # leaves a file in /tmp and in its working folder
        "tmp_leftover": ref(after={"lookup": f"for _p in ('/tmp/{leftover}', '{leftover}'):\n"
                                             f"    open(_p, 'w').write('left behind')"}),
        # the hidden checks through /proc/<pid>/root of a root process
        "proc_root": _file_probe("proc_root.py", checks_py=str(CHECKS_PY), digest=_sha(CHECKS_PY)),
        "autograder_snoop": _file_probe("autograder_snoop.py"),  # Gradescope's /autograder
        "kill_all": ref(after={"retrieve": _file_cell("kill_all.py", "attack()")}),  # kill(-1), parent
        "reference": ref(after=batch_tag(token)),
    })
    # looks for the flag the survivor leaves where it could read checks.py
    specs["collector"] = probe_spec(flag_probe(token))
    specs["collector"].after["retrieve"] = batch_tag(token)["lookup"]
    # first, alone in its folder: re-forks for 60 s, tampers with later jobs of this batch
    write_nb(subs / "1", "a_survivor", ref(after={"forward": survivor_cell(marker, "jobs", token)}))
    for name, spec in specs.items():
        write_nb(subs / "2", name, spec)
    for path in [base, subs, *subs.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    out = base / "out"
    decoy = f"/tmp/ck-decoy-{token}/classmate.ipynb"  # a process whose command line names a notebook
    script = (f"{sys.executable} -c 'import time; time.sleep(600)' {decoy} &\n"
              f"exec {sys.executable} -m coursekit grade {subs / '1'} {subs / '2'} --out {out} "
              "--jobs 2 --quiet\n")
    try:
        run = container.in_container(["bash", "-c", script], zip_path=zip_path, out=base / "container",
                                     cwd=str(REPO), env=dict([ENV_TOKEN]), timeout=400)
        rows = {}
        if (out / "grades.csv").is_file():
            with (out / "grades.csv").open() as f:
                rows = {r["student"]: r for r in csv.DictReader(f)}
        yield {"run": run, "rows": rows, "listener": listener, "leftover": leftover, "marker": marker,
               "token": token, "flags": sorted(str(p) for p in Path("/tmp").glob(f"ck-flag-{token}")),
               "services": list(services.received)}
    finally:
        listener.close()
        services.close()
        end_survivors(marker, token)  # its files in the host's /tmp, where it could write them
        Path("/tmp", leftover).unlink(missing_ok=True)
        shutil.rmtree(base, ignore_errors=True)


def _row(attacks, student: str) -> tuple[float, ...]:
    rows = attacks["rows"]
    assert student in rows, f"no row for {student!r}: {attacks['run'].why()}"
    return tuple(float(rows[student][q]) for q in QUESTIONS)


class TestAttacksAtTheLevelAllowed:
    def test_every_row_graded_in_landlock(self, attacks):
        run = attacks["run"]
        assert run.rc == 0 and not run.timed_out, run.why()
        assert "isolation: landlock" in run.stderr, run.why()
        levels = {name: row.get("isolation") for name, row in attacks["rows"].items()}
        assert len(levels) == 21 and set(levels.values()) == {"landlock"}, levels

    @pytest.mark.parametrize("name", sorted(read_probes(RELEASE))
                             + ["environment", "network", "proc_root", "autograder_snoop",
                                "unix_path_socket", "abstract_socket", "proc_other_processes"])
    def test_probe_kept_out(self, attacks, name):
        assert _row(attacks, name) == NOT_LEAKED, f"{name}: the probe leaked (lookup 5)"

    def test_no_local_service_of_the_host_was_reached(self, attacks):
        assert attacks["services"] == []
        assert _row(attacks, "lab_needs") == FULL  # a socketpair and /proc/self still work

    def test_nothing_reached_the_network(self, attacks):
        lst = attacks["listener"]
        assert (lst.connections, bytes(lst.received)) == (0, b"")

    def test_attacks_on_the_grader_cost_only_their_cell(self, attacks):
        assert _row(attacks, "kill_all") == FULL
        assert _row(attacks, "tmp_leftover") == FULL
        assert not Path("/tmp", attacks["leftover"]).exists()

    def test_survivor_changed_no_later_grade(self, attacks):
        assert _row(attacks, "a_survivor") == FULL  # leaving a process costs nothing by itself
        assert _row(attacks, "stub") == ZERO
        assert _row(attacks, "reference") == FULL
        assert _row(attacks, "collector") == NOT_LEAKED
        assert attacks["flags"] == []

    def test_no_process_of_the_attack_left(self, attacks):
        """Listed by the container's PID 1 when `coursekit grade` had ended."""
        left = [p for p in attacks["run"].leftovers if attacks["marker"] in p["cmdline"]]
        assert left == []
        assert {p["uid"] for p in attacks["run"].leftovers} <= {0}  # no sandbox uid at all


# --- memory, measured by the supervisor ----------------------------------------------------

@pytest.fixture(scope="module")
def memory(zip_path, tmp_path_factory) -> dict:
    run = container.in_container([sys.executable, str(ATTACKS / "memory_job.py")], zip_path=zip_path,
                                 out=tmp_path_factory.mktemp("memory"), cwd=str(REPO), timeout=180)
    assert run.rc == 0, run.why()
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_memory_over_the_limit_is_stopped(memory):
    """Without CAP_SYS_PTRACE (Docker's default) root could not read the job's
    /proc/<pid>/smaps_rollup, counted 0 and never stopped it; it now reads it with the
    job's own filesystem ids (limits.py)."""
    assert memory["level"] == "landlock"
    assert memory["one_process"] == {"0": "out of memory"}
    assert memory["forks"] == {"0": "out of memory"}
