"""Batch grading speed: `coursekit grade --jobs 2`, `coursekit grade --cluster` on a Dask
cluster of 2 workers, and a sequential `otter run` loop.

Makes N distinct submissions from the test corpus (correct and wrong mixed; each copy
gets its own Markdown cell so no two files are alike), grades them every way in one run
(and `coursekit grade` once more with only the sandbox layers it had before issue 10:
own uid and rlimits, no namespaces, Landlock or seccomp — the isolation's cost),
and prints the wall times, the ratios, the time per submission and whether every
per-question score agrees. The Dask cluster (`dask scheduler` and two `dask worker
--nthreads 1` processes on loopback) is started before its clock starts, as a course's
cluster would be already running; its workers still start their graders inside the
timed run, as local workers do. Needs a built autograder zip (`make build`).

    .venv/bin/python benchmarks/grade_bench.py            # 40 submissions
    .venv/bin/python benchmarks/grade_bench.py -n 10      # quicker
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

import course_config as cfg  # noqa: E402
from coursekit.grade import otter_run, scores_from_results  # noqa: E402
from tests.corpus import SUBMISSIONS, make_notebook  # noqa: E402


def make_submissions(folder: Path, n: int) -> list[Path]:
    release = cfg.RELEASE_DIR / f"{cfg.ASSIGNMENT}.ipynb"
    paths = []
    for i, name in enumerate(islice(cycle(sorted(SUBMISSIONS)), n)):
        nb = make_notebook(release, SUBMISSIONS[name])
        nb.cells.append(nbformat.v4.new_markdown_cell(f"submission {i}"))
        path = folder / f"s{i:03d}_{name}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def _coursekit_grade(subs: Path, out: Path, how: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "coursekit", "grade", str(subs), "--out", str(out),
                    *how, "--quiet"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def _scores(out: Path) -> dict[str, dict[str, float]]:
    return {r["student"]: {q: float(r[q]) for q in cfg.AUTOGRADED_POINTS}
            for r in csv.DictReader((out / "grades.csv").open())}


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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=40, help="number of submissions")
    parser.add_argument("--jobs", type=int, default=2, help="local jobs, and Dask workers")
    args = parser.parse_args()
    if not cfg.AUTOGRADER_ZIP.is_file():
        sys.exit(f"{cfg.AUTOGRADER_ZIP} not found: run `make build` first")
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        paths = make_submissions(subs, args.n)

        # The same batch with only the layers the sandbox had before issue 10 (own uid,
        # rlimits, forked child): the isolation's cost per submission, same run.
        before = _coursekit_grade(subs, Path(tmp) / "out-before", ["--jobs", str(args.jobs)],
                                  {"COURSEKIT_REFUSE": "namespaces,landlock,seccomp"})
        ours = _coursekit_grade(subs, Path(tmp) / "out", ["--jobs", str(args.jobs)])
        rows = _scores(Path(tmp) / "out")

        (Path(tmp) / "dask").mkdir()
        with dask_cluster(Path(tmp) / "dask", args.jobs) as address:
            on_cluster = _coursekit_grade(subs, Path(tmp) / "out-cluster", ["--cluster", address])
        cluster_rows = _scores(Path(tmp) / "out-cluster")

        start = time.perf_counter()
        theirs = {}
        for i, path in enumerate(paths):
            theirs[path.stem] = scores_from_results(otter_run(path))
            print(f"otter run {i + 1}/{len(paths)}", end="\r", flush=True, file=sys.stderr)
        loop = time.perf_counter() - start

    agree = rows == theirs == cluster_rows
    diffs = [k for k in theirs if not rows.get(k) == cluster_rows.get(k) == theirs[k]]
    n = args.n
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"submissions: {n} ({len(set(p.stem.split('_', 1)[1] for p in paths))} distinct kinds)")
    print(f"coursekit grade --jobs {args.jobs}, uid + limits only (before issue 10): {before:.1f} s "
          f"({before / n:.2f} s per submission)")
    print(f"coursekit grade --jobs {args.jobs}: {ours:.1f} s ({ours / n:.2f} s per submission); "
          f"isolation adds {(ours - before) / n:+.2f} s per submission (wall, {args.jobs} jobs)")
    print(f"coursekit grade --cluster (Dask, {args.jobs} workers on this machine): {on_cluster:.1f} s "
          f"({on_cluster / n:.2f} s per submission); {on_cluster / ours:.2f}x the time of --jobs {args.jobs}")
    print(f"sequential otter run loop: {loop:.1f} s ({loop / n:.2f} s per submission)")
    print(f"speed-up over the otter loop: --jobs {args.jobs} {loop / ours:.1f}x, "
          f"--cluster {loop / on_cluster:.1f}x")
    print(f"all per-question scores agree (jobs, cluster, otter): {agree}"
          + (f" (differ: {diffs})" if diffs else ""))
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()
