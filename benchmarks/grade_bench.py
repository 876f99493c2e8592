"""Batch grading speed: `coursekit grade --jobs 2` versus a sequential `otter run` loop.

Makes N distinct submissions from the test corpus (correct and wrong mixed; each copy
gets its own Markdown cell so no two files are alike), grades them both ways in one run
(and `coursekit grade` once more with only the sandbox layers it had before issue 10:
own uid and rlimits, no namespaces, Landlock or seccomp — the isolation's cost),
and prints both wall times, the ratio, the time per submission and whether every
per-question score agrees. Needs a built autograder zip (`make build`).

    .venv/bin/python benchmarks/grade_bench.py            # 40 submissions
    .venv/bin/python benchmarks/grade_bench.py -n 10      # quicker
"""

from __future__ import annotations

import argparse
import os
import platform
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


def _coursekit_grade(subs: Path, out: Path, jobs: int, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "coursekit", "grade", str(subs), "--out", str(out),
                    "--jobs", str(jobs), "--quiet"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, env={**os.environ, **env})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=40, help="number of submissions")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if not cfg.AUTOGRADER_ZIP.is_file():
        sys.exit(f"{cfg.AUTOGRADER_ZIP} not found: run `make build` first")
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        paths = make_submissions(subs, args.n)

        # The same batch with only the layers the sandbox had before issue 10 (own uid,
        # rlimits, forked child): the isolation's cost per submission, same run.
        before = _coursekit_grade(subs, Path(tmp) / "out-before", args.jobs,
                                  {"COURSEKIT_REFUSE": "namespaces,landlock,seccomp"})
        ours = _coursekit_grade(subs, Path(tmp) / "out", args.jobs, {})
        import csv

        rows = {r["student"]: {q: float(r[q]) for q in cfg.AUTOGRADED_POINTS}
                for r in csv.DictReader((Path(tmp) / "out" / "grades.csv").open())}

        start = time.perf_counter()
        theirs = {}
        for i, path in enumerate(paths):
            theirs[path.stem] = scores_from_results(otter_run(path))
            print(f"otter run {i + 1}/{len(paths)}", end="\r", flush=True, file=sys.stderr)
        loop = time.perf_counter() - start

    agree = rows == theirs
    diffs = [k for k in theirs if rows.get(k) != theirs[k]]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"submissions: {args.n} ({len(set(p.stem.split('_', 1)[1] for p in paths))} distinct kinds)")
    print(f"coursekit grade --jobs {args.jobs}, uid + limits only (before issue 10): {before:.1f} s "
          f"({before / args.n:.2f} s per submission)")
    print(f"coursekit grade --jobs {args.jobs}: {ours:.1f} s ({ours / args.n:.2f} s per submission); "
          f"isolation adds {(ours - before) / args.n:+.2f} s per submission (wall, {args.jobs} jobs)")
    print(f"sequential otter run loop: {loop:.1f} s ({loop / args.n:.2f} s per submission)")
    print(f"speed-up: {loop / ours:.1f}x")
    print(f"all per-question scores agree: {agree}" + (f" (differ: {diffs})" if diffs else ""))
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()
