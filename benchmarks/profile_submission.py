"""Where one submission's grading time goes (issue 13), in the real sandbox.

Grades a correct corpus submission with a warm grader (as a `coursekit grade` worker
does, after one warm-up submission) and splits the wall time by the supervisor's own
clock: starting the job (fork, namespaces, view, limits) until its first message, the
notebook's cells, each call of the student's code on the hidden inputs (the training
check apart), and the verdicts made in the trusted process. Then profiles the two
heavy parts in this process with cProfile: the training call and the held-out MSE.

    unshare --pid --fork --mount-proc .venv/bin/python benchmarks/profile_submission.py [--runs 3]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coursekit import course  # noqa: E402
from coursekit.notebook_defs import load_definitions  # noqa: E402
from tests.helpers import write_corpus  # noqa: E402

COURSE = course.load()
A = COURSE.assignment()
LAB = A.lab()  # imports the lab folder as the package attention_basics
from attention_basics import calls, checks  # noqa: E402


def phases(grader, path: Path) -> dict[str, float]:
    """One grading of `path`, split by the job's timeline."""
    box = grader.sandbox
    captured = {}
    run_job = box.run_job

    def timed(job, limits, group):
        start = time.monotonic()
        captured["result"] = result = run_job(job, limits, group)
        captured["start"], captured["end"] = start, time.monotonic()
        return result

    box.run_job = timed
    t0 = time.monotonic()
    grader.grade_path(path)
    total = time.monotonic() - t0
    box.run_job = run_job
    tl, start, end = captured["result"].timeline, captured["start"], captured["end"]
    out = {"job start (fork, sandbox set-up)": tl[0][2] - start}
    marks = tl + [("end", None, end)]
    cells = calls_t = training = 0.0
    for (kind, item, t), (_, _, t_next) in zip(marks, marks[1:]):
        if kind == "cell":
            cells += t_next - t
        elif kind == "call" and item == "training":
            training += t_next - t
        elif kind == "call":
            calls_t += t_next - t
    out["notebook cells"] = cells
    out["16 calls on hidden inputs"] = calls_t
    out["training check (in the sandbox)"] = training
    out["job end, reading results"] = end - start - sum(out.values())
    out["verdicts (trusted process)"] = total - (end - start)
    out["total"] = total
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    training = LAB.settings["training"]
    print(f"load average {os.getloadavg()[0]:.2f}; budget {training['steps']} steps x "
          f"batch {training['batch_size']}")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_corpus(A.release_dir / f"{A.name}.ipynb", Path(tmp), ["c01_at_operator"])[0]
        grader = COURSE.grader(A)
        try:
            grader.grade_path(path)  # warm-up: the zygote's start is paid once per worker
            runs = [phases(grader, path) for _ in range(args.runs)]
        finally:
            grader.close()
    for key in runs[0]:
        values = sorted(r[key] for r in runs)
        print(f"{key:36s} median {values[len(values) // 2]:6.3f} s  (min {values[0]:.3f}, max {values[-1]:.3f})")

    import torch

    torch.set_num_threads(1)
    p = LAB.inputs(LAB.load_data(A.data_path()), LAB.settings)
    model = load_definitions(A.solutions_dir / f"{A.name}.ipynb")["AttentionTest"]
    for what, fn in (("training call", lambda: calls.evaluate(calls.CALLS_BY_ID["training"],
                                                               {"AttentionTest": model}, p, {})),):
        prof = cProfile.Profile()
        prof.enable()
        out = fn()
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(6)
        print(f"\n--- cProfile: {what} (in this process, one thread)\n" + buf.getvalue().split("\n\n", 1)[-1])
    prof = cProfile.Profile()
    prof.enable()
    checks.v_training({"training": out}, p)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(4)
    print("--- cProfile: the training verdict (trusted process)\n" + buf.getvalue().split("\n\n", 1)[-1])


if __name__ == "__main__":
    main()
