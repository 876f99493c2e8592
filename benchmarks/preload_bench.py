"""What preloading the lab's imports in the grader saves per submission.

Grades the solutions notebook `--runs` times with one warm grader (after one warm-up
grading), once with the lab's `preload` (lab.toml) emptied and once as configured. Each
variant runs in its own fresh process, so nothing is imported by the other.

    .venv/bin/python benchmarks/preload_bench.py --runs 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one_variant(preload: bool, runs: int) -> None:
    import dataclasses

    from coursekit import course

    COURSE = course.load()
    A = COURSE.assignment()
    if not preload:
        A = dataclasses.replace(A, preload=(), _lab=[])  # its lab is made without the preload
    grader = COURSE.grader(A)
    path = A.solutions_dir / f"{A.name}.ipynb"
    grader.grade_path(path)  # warm-up
    start = time.perf_counter()
    for _ in range(runs):
        report = grader.grade_path(path)
    per = (time.perf_counter() - start) / runs
    print(f"preload {'on ' if preload else 'off'}: {per:.2f} s per submission "
          f"(score {sum(report.scores.values()):g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", choices=["on", "off"])
    args = parser.parse_args()
    if args.variant:
        one_variant(args.variant == "on", args.runs)
        return
    for variant in ("off", "on"):
        subprocess.run([sys.executable, __file__, "--variant", variant, "--runs", str(args.runs)],
                       check=True)


if __name__ == "__main__":
    main()
