"""Run one job in a fresh sandbox, as a grader would, and print what happened as JSON.

    python tests/attacks/memory/job.py '{"memory_mb": 720, "cells": ["..."]}'

Used by tests/test_memory_forms.py where the test itself cannot be the grader: as an
ordinary user (no memory cgroup may be made) and inside tests/container.py's Docker-like
container (cgroupfs read-only). Prints the level, the layers, the memory mechanism and
the job's skipped cells and failed calls.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from coursekit.sandbox import Sandbox  # noqa: E402
from coursekit.sandbox.supervisor import Limits  # noqa: E402


def main() -> None:
    spec = json.loads(sys.argv[1])
    limits = Limits(total_s=120, cell_s=25, call_s=5, long_call_s=5, memory_mb=spec["memory_mb"])
    box = Sandbox({"x": np.zeros(3, dtype=np.float32)}, slot=13, memory_mb=spec["memory_mb"],
                  preload=["numpy"])
    box.start()
    try:
        result = box.run_job({"cells": spec["cells"], "calls": [], "training": {}}, limits, lambda c: c)
        out = {"level": box.level, "layers": box.layers,
               "memory_guard": getattr(box, "memory_guard", None),
               "skipped": {str(k): v for k, v in result.outcome.skipped_cells.items()},
               "failed": result.outcome.failed_calls,
               "cells_run": sorted({i for kind, i, _ in result.timeline if kind == "cell"})}
    finally:
        box.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
