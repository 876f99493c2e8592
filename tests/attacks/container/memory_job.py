"""Memory attacks on the sandbox, run as a container's command (`tests/test_container.py`).

Starts a sandbox the way a grader does (`coursekit.sandbox.Sandbox`, a 600 MB limit) and
runs two jobs that use more than that: one process touching 50 MB at a time (as
tests/test_sandbox.py's `test_real_memory_is_limited`), and three forks touching 300 MB
each (no process over the limit, their sum over it). Prints one JSON object: each job's
skipped cells, the level, and whether the supervisor could read the job's PSS.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from coursekit.sandbox import Sandbox  # noqa: E402
from coursekit.sandbox.supervisor import Limits  # noqa: E402

import numpy as np  # noqa: E402

LIMITS = Limits(total_s=60, cell_s=15, call_s=5, long_call_s=5, memory_mb=600)
ONE_PROCESS = ("import time\nhog = []\nwhile True:\n    hog.append(b'1' * 5 * 10**7)\n"
               "    time.sleep(0.1)")
FORKS = """
import os, time
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        hog = b"1" * 300 * 10**6
        time.sleep(4)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
"""


def main() -> None:
    box = Sandbox({"x": np.zeros(3, dtype=np.float32)}, slot=11, memory_mb=LIMITS.memory_mb,
                  preload=["numpy"])
    box.start()
    try:
        out = {"level": box.level}
        for name, cell in (("one_process", ONE_PROCESS), ("forks", FORKS)):
            result = box.run_job({"cells": [cell], "calls": [], "training": {}}, LIMITS, lambda c: c)
            out[name] = {str(k): v for k, v in result.outcome.skipped_cells.items()}
    finally:
        box.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
