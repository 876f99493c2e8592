"""Batch grading speed, before and after issue 19, against stock `otter run`, in one run.

Makes N distinct submissions from the test corpus (correct and wrong mixed; each copy
gets its own Markdown cell so no two files are alike) and grades the same files every way:

- `coursekit grade --jobs N` with the code of `--before REV` (default 3d4c051, before
  issue 19: the job trained the student's model for 75 Adam steps), from a temporary
  `git worktree` of that revision, and with this working tree's code (the job computes
  the loss and gradients at three points; the grader trains its reference once).
  Everything committed between REV and this tree counts in the difference too
  (after 3d4c051: a memory cgroup per job where one can be made);
- this working tree's `coursekit grade` once more with only the sandbox layers it had
  before issue 10 (own uid and rlimits, no namespaces, Landlock or seccomp): the
  isolation's cost;
- `coursekit grade --cluster` on a Dask scheduler and `--jobs` one-thread workers on loopback
  (`--skip-cluster` to leave it out), started before its clock as a course's cluster
  would be already running; its workers still start their graders inside the timed run;
- a sequential loop of **stock** `otter run`: an `otter assign` zip of the same staged
  master without our plugin, as a course would grade without this package (its hidden
  test cells call `attention_checks.run_case` in otter's own kernel); built, and checked
  on the solutions (full marks) and the release (0), before any clock starts;
- with `--plugin-loop`, also a sequential `otter run` loop with our built zip (plugin).

Prints the wall times, the time per submission before and after, the speed-ups over the
stock loop, which per-question scores differ before/after (and for which submission
kinds), and the agreement with stock otter (informational: its checks run in-process,
unsandboxed). Exits 1 if `--jobs` and `--cluster` (or, with `--plugin-loop`, our
`otter run`) disagree. Needs a built autograder zip (`make build`) and a git checkout.
Run it inside `unshare --pid --fork --mount-proc` when grading as root.

    .venv/bin/python benchmarks/grade_bench.py -n 18                  # the issue's measurement
    .venv/bin/python benchmarks/grade_bench.py -n 18 --kinds c,w28,w29,w3   # 18 kinds, w28-w34 in
    .venv/bin/python benchmarks/grade_bench.py -n 3 --skip-cluster    # a quick trial
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import cycle, islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from coursekit import course  # noqa: E402
from coursekit.batch.otter_run import otter_run  # noqa: E402
from tests.helpers import question_scores  # noqa: E402
from tests.helpers import SUBMISSIONS, make_notebook  # noqa: E402

COURSE = course.load()
A = COURSE.assignment()

Scores = dict[str, dict[str, float]]  # submission (file stem) -> question -> points
BEFORE_ISSUE_19 = "3d4c051"


def pick_kinds(prefixes: str | None) -> list[str]:
    """Corpus kinds, sorted; only those whose names start with one of the comma-separated
    `prefixes` when given (`c,w28,w29,w3`: the 11 correct ones and w28-w34)."""
    names = sorted(SUBMISSIONS)
    if not prefixes:
        return names
    wanted = [p.strip() for p in prefixes.split(",") if p.strip()]
    picked = [n for n in names if any(n.startswith(p) for p in wanted)]
    if not picked:
        sys.exit(f"--kinds {prefixes}: no corpus submission matches")
    return picked


def make_submissions(folder: Path, n: int, kinds: list[str]) -> list[Path]:
    """`n` notebooks cycling through `kinds`, each with a Markdown cell of its own."""
    release = A.release_dir / f"{A.name}.ipynb"
    paths = []
    for i, name in enumerate(islice(cycle(kinds), n)):
        nb = make_notebook(release, SUBMISSIONS[name])
        nb.cells.append(nbformat.v4.new_markdown_cell(f"submission {i}"))
        path = folder / f"s{i:03d}_{name}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def kind(student: str) -> str:
    """The corpus kind of a submission's file stem (`s003_w01_softmax_wrong_dim` -> `w01_...`)."""
    return student.split("_", 1)[1]


def _coursekit_grade(subs: Path | list[Path], out: Path, how: list[str],
                     env: dict[str, str] | None = None, code: Path = ROOT) -> float:
    """Wall time of one `coursekit grade` of `subs` into `out`, run with the coursekit in
    `code` (`env` must then put `code` on PYTHONPATH)."""
    paths = subs if isinstance(subs, list) else [subs]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "coursekit", "grade", *map(str, paths), "--out", str(out),
                    *how, "--quiet"], check=True, cwd=code,
                   stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def _scores(out: Path) -> Scores:
    # .get: a question the other revision lacks reads as missing (nan), never a crash
    return {r["student"]: {q: float(r.get(q) or "nan") for q in A.points}
            for r in csv.DictReader((out / "grades.csv").open())}


def differences(a: Scores, b: Scores) -> list[tuple[str, str]]:
    """(submission, question) pairs whose scores differ (or are missing on one side)."""
    return [(s, q) for s in sorted(set(a) | set(b)) for q in A.points
            if a.get(s, {}).get(q) != b.get(s, {}).get(q)]


def _differing_kinds(diffs: list[tuple[str, str]]) -> str:
    by_kind: dict[str, list[str]] = {}
    for student, question in diffs:
        by_kind.setdefault(kind(student), []).append(question)
    return "; ".join(f"{k}: {', '.join(sorted(set(qs)))}" for k, qs in sorted(by_kind.items()))


# --- stock otter: the same master, no plugin --------------------------------------

# The master's hidden test cells `import attention_checks` and call its `run_case(case_id,
# **definitions)`. The stock zip ships this module as attention_checks.py: the lab's own
# cases (`Lab.run_case`, source/<lab>/ as a package since issue 21), with the lab's settings
# and data that otter copies next to it, run in otter's kernel, unsandboxed.
STOCK_CHECKS = """\"\"\"The lab's hidden checks for the master's hidden test cells (grade_bench.py's stock zip).\"\"\"
import json
import sys
from pathlib import Path

sys.path.insert(0, {root!r})  # this checkout's coursekit
from coursekit.lab import load_lab  # noqa: E402

_HERE = Path(__file__).resolve().parent
_SETTINGS = json.loads((_HERE / {config!r}).read_text())
_LAB = load_lab(Path({folder!r}), _SETTINGS)
_INPUTS = {{}}


def run_case(case_id, **defs):
    if not _INPUTS:  # the hidden inputs once, the reference training included
        _INPUTS.update(_LAB.inputs(_LAB.load_data(_HERE / _SETTINGS["bundle_file"]), _LAB.settings))
    _LAB.run_case(case_id, defs, _INPUTS)
"""


def stock_zip(folder: Path) -> Path:
    """An `otter assign` zip of the staged master without our plugin, as a course would
    grade without this package: the staging and `otter assign` of `make build`, then the
    zip as otter made it (no `finish_zip`). Its hidden test files call
    `attention_checks.run_case` in otter's kernel, with the data and settings that
    otter copies next to the submission."""
    from coursekit.build import BuildError, otter_zip, stage
    from coursekit.lab_files import PUBLIC_CHECKS_MODULE

    lab = A.lab()
    bundle = folder / A.data_file
    lab.make_data(bundle)
    staged = stage.prepare(A.master, folder / "stage", bundle, A, COURSE)
    here = staged.path.parent
    config_file = "attention_config.json"
    (here / "attention_checks.py").write_text(STOCK_CHECKS.format(
        root=str(ROOT), folder=str(lab.folder), config=config_file))
    (here / PUBLIC_CHECKS_MODULE).write_text(lab.public_checks.read_text())
    settings = {"training": lab.settings["training"], "data": lab.settings["data"], "bundle_file": A.data_file}
    (here / config_file).write_text(json.dumps(settings, indent=1, sort_keys=True))
    conf = stage.assignment_config(staged.master.config, A, COURSE)
    conf.pop("plugins", None)  # the only thing that makes otter call our code
    conf["autograder_files"] = ["attention_checks.py", PUBLIC_CHECKS_MODULE, A.data_file, config_file]
    staged.nb.cells[staged.master.config_cell].source = stage.dump_raw("ASSIGNMENT CONFIG", conf)
    nbformat.write(staged.nb, staged.path)
    # No test run: otter would grade the solution once more; check_stock_zip does that.
    try:
        return otter_zip.run_otter_assign(staged.path, folder / "dist", A.master)
    except BuildError as exc:
        sys.exit(str(exc))


def check_stock_zip(zip_path: Path) -> None:
    """Exit unless stock `otter run` with `zip_path` really grades: the solutions earn
    full marks and the release earns 0."""
    import zipfile

    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        config = json.loads(z.read("otter_config.json")) if "otter_config.json" in names else {}
        if any(n.startswith("coursekit/") for n in names) or config.get("plugins"):
            sys.exit(f"{zip_path}: not a stock otter zip (it carries our engine or a plugin)")
    full = {q: float(p) for q, p in A.points.items()}
    for label, notebook, expect in (
            ("solutions", A.solutions_dir / f"{A.name}.ipynb", full),
            ("release", A.release_dir / f"{A.name}.ipynb", {q: 0.0 for q in full})):
        got = question_scores(otter_run(notebook, zip_path))
        if got != expect:
            sys.exit(f"stock otter run of the {label}: {got}, expected {expect}")
        print(f"stock otter zip, {label}: {sum(got.values()):g}/{sum(full.values()):g}", file=sys.stderr)


# --- the code before issue 19, in a worktree --------------------------------------

@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached `git worktree` of `rev` in a temporary folder, removed at the end
    (even on error or Ctrl-C)."""
    tmp = Path(tempfile.mkdtemp(prefix="coursekit-before-"))
    tree = tmp / "tree"
    made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if made.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(f"--before {rev}: git worktree add failed: {made.stderr.strip()}")
    try:
        yield tree
    finally:
        # --force: the grade left untracked files there (.cache/, __pycache__)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"])


def code_env(tree: Path) -> dict[str, str]:
    """Environment that makes `python -m coursekit` (run in `tree`) import `tree`'s
    coursekit and course_config: PYTHONPATH wins over the venv's editable install of
    this checkout (its finder comes after the path), and the zygote gets `tree` as its
    engine root. The MNIST root is this checkout's (a worktree's default lies beside it)."""
    return {"PYTHONPATH": str(tree), "MNIST_ROOT": str(COURSE.mnist_root.resolve())}


def check_imports(tree: Path) -> None:
    """Exit unless a Python started as the graders are imports `tree`'s own code. (`tree` is
    the revision before issue 19, whose coursekit imports the top-level course_config by
    name: it must be the tree's too.)"""
    probe = ("import coursekit, course_config, coursekit.sandbox.supervisor as s; "
             "print(coursekit.__file__); print(course_config.__file__); print(s.__file__)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tree, env={**os.environ, **code_env(tree)},
                         check=True, capture_output=True, text=True).stdout.split()
    wrong = [f for f in out if not Path(f).resolve().is_relative_to(tree.resolve())]
    if wrong or len(out) != 3:
        sys.exit(f"the worktree's grader would import {wrong or out}, not {tree}'s code")
    print(f"before: imports {out[0]}", file=sys.stderr)


@contextlib.contextmanager
def dask_cluster(folder: Path, workers: int = 2):
    """A Dask scheduler and `workers` one-thread workers on loopback, each in a process
    group of its own; yields the scheduler's address; kills all of it (and the workers'
    sandboxes, which run in sessions of their own) at the end."""
    import psutil
    from distributed import Client

    dask = Path(sys.executable).parent / "dask"
    info = folder / "scheduler.json"
    procs = []

    def start(*args: str) -> None:
        procs.append(subprocess.Popen([str(dask), *args], cwd=folder, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(info),
              "--no-dashboard")
        deadline = time.time() + 60
        while not info.is_file() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for i in range(workers):
            start("worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                  "--local-directory", str(folder / f"w{i}"))
        with Client(address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                family = psutil.Process(proc.pid).children(recursive=True)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                for child in family:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=40, help="number of submissions")
    parser.add_argument("--jobs", type=int, default=2, help="local jobs, and Dask workers")
    parser.add_argument("--before", metavar="REV", default=BEFORE_ISSUE_19,
                        help=f"revision whose `coursekit grade` is the 'before' (default {BEFORE_ISSUE_19})")
    parser.add_argument("--kinds", metavar="PREFIXES", default=None,
                        help="comma-separated prefixes of the corpus kinds to cycle through "
                             "(default: all, sorted)")
    parser.add_argument("--skip-cluster", action="store_true", help="leave out the Dask run")
    parser.add_argument("--plugin-loop", action="store_true",
                        help="also time a sequential `otter run` loop with our built zip (doubles the run)")
    args = parser.parse_args()
    if args.n < 1:
        sys.exit("-n must be at least 1")
    if not A.autograder_zip.is_file():
        sys.exit(f"{A.autograder_zip} not found: run `make build` first")
    n, jobs = args.n, ["--jobs", str(args.jobs)]
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731 - progress, not results

    with tempfile.TemporaryDirectory(prefix="coursekit-bench-") as tmp_name, worktree(args.before) as tree:
        tmp = Path(tmp_name)
        subs = tmp / "subs"
        subs.mkdir()
        paths = make_submissions(subs, n, pick_kinds(args.kinds))

        # Before any clock: the stock zip (built and checked), the old code's imports,
        # and one warm-up grade per revision (the old one makes its MNIST bundle cache
        # in the worktree; both load torch once, so the file cache is warm for both).
        say("building the stock otter zip (otter assign, no plugin)")
        (tmp / "stock").mkdir()
        stock = stock_zip(tmp / "stock")
        check_stock_zip(stock)
        check_imports(tree)
        old_env = code_env(tree)
        say("warm-up grades")
        _coursekit_grade([paths[0]], tmp / "warm-before", jobs, old_env, code=tree)
        _coursekit_grade([paths[0]], tmp / "warm-after", jobs)

        say(f"coursekit grade, {args.before} (before issue 19)")
        before = _coursekit_grade(subs, tmp / "out-before", jobs, old_env, code=tree)
        before_rows = _scores(tmp / "out-before")
        # The same batch with only the layers the sandbox had before issue 10 (own uid,
        # rlimits, forked child): the isolation's cost per submission, same run.
        say("coursekit grade, sandbox layers of issue 10 refused")
        layers = _coursekit_grade(subs, tmp / "out-layers", jobs,
                                  {"COURSEKIT_REFUSE": "namespaces,landlock,seccomp"})
        say("coursekit grade, this working tree")
        ours = _coursekit_grade(subs, tmp / "out", jobs)
        rows = _scores(tmp / "out")

        on_cluster, cluster_rows = None, None
        if not args.skip_cluster:
            (tmp / "dask").mkdir()
            with dask_cluster(tmp / "dask", args.jobs) as address:
                say("coursekit grade --cluster")
                on_cluster = _coursekit_grade(subs, tmp / "out-cluster", ["--cluster", address])
            cluster_rows = _scores(tmp / "out-cluster")

        def otter_loop(zip_path: Path, label: str) -> tuple[float, Scores]:
            start, got = time.perf_counter(), {}
            for i, path in enumerate(paths):
                got[path.stem] = question_scores(otter_run(path, zip_path))
                say(f"{label} {i + 1}/{len(paths)}")
            return time.perf_counter() - start, got

        loop, stock_rows = otter_loop(stock, "stock otter run")
        plugin_loop, plugin_rows = (otter_loop(A.autograder_zip, "otter run, our zip")
                                    if args.plugin_loop else (None, None))

    per = lambda t: f"{t:.1f} s ({t / n:.2f} s per submission)"  # noqa: E731
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"submissions: {n} ({len(set(kind(p.stem) for p in paths))} distinct kinds)")
    print(f"coursekit grade --jobs {args.jobs}, {args.before} (before issue 19): {per(before)}")
    print(f"coursekit grade --jobs {args.jobs}, this tree (after): {per(ours)}; "
          f"{(ours - before) / n:+.2f} s per submission ({ours / before:.2f}x the time before)")
    print(f"coursekit grade --jobs {args.jobs}, uid + limits only (before issue 10): {per(layers)}; "
          f"isolation adds {(ours - layers) / n:+.2f} s per submission (wall, {args.jobs} jobs)")
    if on_cluster is not None:
        print(f"coursekit grade --cluster (Dask, {args.jobs} workers on this machine): {per(on_cluster)}; "
              f"{on_cluster / ours:.2f}x the time of --jobs {args.jobs}")
    print(f"sequential stock otter run loop (otter assign zip, no plugin): {per(loop)}")
    if plugin_loop is not None:
        print(f"sequential otter run loop, our zip (plugin): {per(plugin_loop)}")
    print(f"speed-up over the stock otter loop: --jobs {args.jobs} {loop / ours:.1f}x (goal >= 15x)"
          + (f", --cluster {loop / on_cluster:.1f}x" if on_cluster is not None else ""))

    changed = differences(before_rows, rows)
    print(f"per-question scores that differ before/after issue 19: {len(changed)} of "
          f"{n * len(A.points)}" + (f" ({_differing_kinds(changed)})" if changed else ""))
    vs_stock = differences(rows, stock_rows)
    print(f"per-question scores that differ, coursekit vs stock otter (informational): {len(vs_stock)}"
          + (f" ({_differing_kinds(vs_stock)})" if vs_stock else ""))
    failed = False
    if cluster_rows is not None:
        off = differences(rows, cluster_rows)
        print(f"--jobs and --cluster agree on every per-question score: {not off}"
              + (f" (differ: {_differing_kinds(off)})" if off else ""))
        failed |= bool(off)
    if plugin_rows is not None:
        off = differences(rows, plugin_rows)
        print(f"--jobs and otter run with our zip agree on every per-question score: {not off}"
              + (f" (differ: {_differing_kinds(off)})" if off else ""))
        failed |= bool(off)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
