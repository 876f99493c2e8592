"""The untrusted side of grading: run a submission's cells, call its definitions on the
hidden inputs, write plain arrays back.

Runs in a child process started by `coursekit.sandbox` (forked from a warm worker, under
limits and, where the grader is root, as an unprivileged user). Everything it writes is
treated as a claim: `coursekit.engine` parses it strictly (no pickle) and judges it in
another process. Protocol, all inside the job folder:

- reads  `job.json` (cells to run, calls to make, training settings) and `inputs.npz`;
- appends `events.jsonl`: `{"cell": i}` before cell i, `{"call": id}` before a call,
  `{"call": id, "error": kind}` when student code fails it;
- writes `out-<call id>.npz` with the arrays of each call that returned.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

DEFINITIONS = ("lookup", "retrieve", "AttentionTest")


def _event(path: Path, **fields: Any) -> None:
    with path.open("a") as f:
        f.write(json.dumps(fields) + "\n")


def run_child(job_dir: str | Path) -> None:
    """Run the job in `job_dir`; returns normally or the process dies (that is handled)."""
    import numpy as np
    import torch

    from coursekit import calls

    job_dir = Path(job_dir)
    job = json.loads((job_dir / "job.json").read_text())
    events = job_dir / "events.jsonl"
    with np.load(job_dir / "inputs.npz", allow_pickle=False) as data:
        p = {k: torch.from_numpy(data[k].copy()) for k in data.files}
    torch.set_num_threads(1)  # deterministic, and fair to parallel jobs

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns["__name__"] = "__main__"
    skip = set(job["skip_cells"])
    for i, source in enumerate(job["cells"]):
        if i in skip:
            continue
        _event(events, cell=i)
        try:
            shell.run_cell(source, store_history=False, silent=True)
        except BaseException:  # SystemExit and friends: the cell ends, grading goes on
            pass
    defs = {name: shell.user_ns.get(name) for name in DEFINITIONS}
    _event(events, cell="done")

    skip_calls = set(job["skip_calls"])
    for call_id in job["calls"]:
        if call_id in skip_calls:
            continue
        _event(events, call=call_id)
        try:
            arrays = calls.evaluate(calls.CALLS_BY_ID[call_id], defs, p, job["training"])
        except calls.StudentError as err:
            _event(events, call=call_id, error=err.kind)
            continue
        except BaseException as exc:  # e.g. sys.exit inside the student's function
            _event(events, call=call_id, error=f"raised {calls._exception_name(exc)}")
            continue
        tmp = job_dir / f".out-{call_id}.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, job_dir / f"out-{call_id}.npz")
    _event(events, call="done")


if __name__ == "__main__":  # for running a job by hand: python -m coursekit.student_side DIR
    run_child(sys.argv[1])
