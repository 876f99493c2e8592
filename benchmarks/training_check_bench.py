"""Time the hidden training check (the solution's AttentionTest, the course budget).

Runs the same code the grader runs: once per grader, the reference's own training run
(the lab's hidden inputs, `lab.inputs`, with its training settings: the grader's points);
per submission, the lab's `calls.evaluate` on the training call (the student side: loss
and gradients at the points) and the trusted verdict `checks.v_training` on what it returns.

    .venv/bin/python benchmarks/training_check_bench.py --runs 5 [--device cuda]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from coursekit import course  # noqa: E402
from coursekit.notebook_defs import load_definitions  # noqa: E402

COURSE = course.load()
A = COURSE.assignment()
LAB = A.lab()  # imports the lab folder as the package attention_basics
from attention_basics import calls, checks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=COURSE.device)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the sandbox
    model = load_definitions(A.solutions_dir / f"{A.name}.ipynb")["AttentionTest"]
    name = (torch.cuda.get_device_name() if args.device == "cuda"
            else platform.processor() or platform.machine())
    print(f"device: {args.device} ({name}), torch {torch.__version__}, threads 1")
    training = LAB.settings["training"]
    runtime = {"device": args.device}  # what the sandbox gives the job's device call
    call = calls.CALLS_BY_ID["training"]
    with tempfile.TemporaryDirectory() as tmp:
        bundle_path = Path(tmp) / A.data_file
        LAB.make_data(bundle_path)
        bundle = LAB.load_data(bundle_path)
        start = time.perf_counter()
        p = LAB.inputs(bundle, LAB.settings)
        reference = time.perf_counter() - start
        print(f"once per grader: the reference's run and the points, {reference:.2f} s "
              f"({training['steps']} steps, batch {training['batch_size']})")
        times = []
        for i in range(args.runs):
            start = time.perf_counter()
            out = calls.evaluate(call, {"AttentionTest": model}, p, runtime)
            checks.v_training({"training": out}, p)
            times.append(time.perf_counter() - start)
            worst = max(checks.gradient_errors({"training": out}, p).values())
            print(f"run {i + 1}: {times[-1]:.3f} s, largest relative gradient error {worst:.1e}")
    print(f"per submission: median {statistics.median(times):.3f} s over {args.runs} runs")


if __name__ == "__main__":
    main()
