"""What the sandbox's isolation costs per submission, layer set against layer set, in one run.

For each set of layers — all of them (`namespaces`: namespaces, fresh root, Landlock,
seccomp), `landlock` (no namespaces), and only a uid of its own and rlimits (the layers of
the sandbox before issue 10) — it starts a warm grader with the other layers refused
(COURSEKIT_REFUSE) and measures, in the same process and on the same machine:

- an empty job (no cell, no call): the sandbox's own cost of starting and ending a job;
- the solutions' cells plus the training call, straight through the sandbox;
- grading real submissions (the solutions and corpus entries), median per submission.

    .venv/bin/python benchmarks/isolation_bench.py            # 5 rounds
    .venv/bin/python benchmarks/isolation_bench.py --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from coursekit import course  # noqa: E402
from tests.helpers import SUBMISSIONS, make_notebook  # noqa: E402

COURSE = course.load()
A = COURSE.assignment()

SETS = {"uid + limits only (before)": "namespaces,landlock,seccomp",
        "landlock (no namespaces)": "namespaces",
        "namespaces (all layers)": ""}
SAMPLE = ("c01_at_operator", "w01_softmax_wrong_dim", "w08_forward_returns_mha_output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lab = A.lab()
    release = A.release_dir / f"{A.name}.ipynb"
    names = [n for n in SAMPLE if n in SUBMISSIONS] or sorted(SUBMISSIONS)[:3]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [A.solutions_dir / f"{A.name}.ipynb"]
        for name in names:
            path = Path(tmp) / f"{name}.ipynb"
            nbformat.write(make_notebook(release, SUBMISSIONS[name]), path)
            paths.append(path)
        print(f"{len(paths)} submissions x {args.rounds} rounds, os.cpu_count()={os.cpu_count()}")
        from coursekit.submission import gradable_cells, read_submission

        cells = gradable_cells(read_submission(paths[0], COURSE.rules), ignore_tag=COURSE.rules.ignore_tag)
        # the job the grader sends (Grader.grade_notebook), with no cell or call, or only the training call
        job = {"cells": [], "calls": [], "long_calls": [], "device_calls": [],
               "definitions": list(lab.definitions), "job_module": lab.job_module}
        training = {**job, "cells": cells, "calls": ["training"], "long_calls": ["training"],
                    "device_calls": ["training"]}
        target = lambda c: lab.calls_by_id[c].target  # noqa: E731
        print(f"{'layers':<30} {'empty job':>10} {'cells+training':>15} {'per submission':>15}  level")
        rows = []
        for label, refuse in SETS.items():
            os.environ["COURSEKIT_REFUSE"] = refuse
            grader = COURSE.grader(A)
            level = grader.isolation
            empty = []
            for _ in range(args.rounds * 4):
                t = time.perf_counter()
                grader.sandbox.run_job(job, grader.limits, target)
                empty.append(time.perf_counter() - t)
            train = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                grader.sandbox.run_job(training, grader.limits, target)
                train.append(time.perf_counter() - t)
            per_sub = []
            for _ in range(args.rounds):
                for path in paths:
                    t = time.perf_counter()
                    grader.grade_path(path)
                    per_sub.append(time.perf_counter() - t)
            grader.close()
            rows.append((label, statistics.median(empty), statistics.median(train),
                         statistics.median(per_sub), level))
            print(f"{label:<30} {rows[-1][1]:>9.3f}s {rows[-1][2]:>14.3f}s {rows[-1][3]:>14.3f}s  {level}",
                  flush=True)
        base = rows[0]
        for label, e, tr, s, _ in rows[1:]:
            print(f"{label}: {e - base[1]:+.3f} s per empty job, {tr - base[2]:+.3f} s cells+training, "
                  f"{s - base[3]:+.3f} s per submission")


if __name__ == "__main__":
    main()
