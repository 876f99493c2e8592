"""Time the hidden training check on this machine (CPU, or CUDA when present).

Trains the solution's AttentionTest with the budget in course_config.TRAINING_CHECK,
`--runs` times, and prints the wall time of each run and the held-out MSE.

    .venv/bin/python benchmarks/training_check_bench.py --runs 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import course_config as cfg  # noqa: E402
from coursekit import checks, data  # noqa: E402
from coursekit.notebook_defs import load_definitions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    model = load_definitions(cfg.SOLUTIONS_DIR / f"{cfg.ASSIGNMENT}.ipynb")["AttentionTest"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = data.make_bundle(Path(tmp) / cfg.BUNDLE_FILE)
        times = []
        for i in range(args.runs):
            start = time.perf_counter()
            mse = checks.training_mse(model, bundle, **cfg.TRAINING_CHECK)
            times.append(time.perf_counter() - start)
            print(f"run {i + 1}: {times[-1]:.2f} s, held-out MSE {mse:.4f}")
    print(f"median {statistics.median(times):.2f} s over {args.runs} runs "
          f"({cfg.TRAINING_CHECK['steps']} steps, batch {cfg.TRAINING_CHECK['batch_size']})")


if __name__ == "__main__":
    main()
