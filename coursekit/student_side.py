"""The untrusted side of grading: run a submission's cells, call its definitions on the
hidden inputs, send plain arrays back.

Runs in the job's init inside the sandbox (`coursekit.sandbox.zygote`), next to student
code, so everything it sends is only a claim: the supervisor parses it strictly and
`coursekit.engine` judges it in another process. It never imports the hidden checks: the
lab's job module (`coursekit.lab.Lab.job_module`, loaded by the zygote before any job) says
what to call, and the inputs arrive as tensors. It speaks only through its channel
(`coursekit.sandbox.channel`): `cell` before cell i, `cells_done`, `call` before a call,
`error` when student code fails it, `out` with its arrays, `done`.
"""

from __future__ import annotations

import sys
from typing import Any


def run_child(job: dict[str, Any], inputs: dict[str, Any], fd: int) -> None:
    """Run `job` (cells, definitions, calls, skips, runtime) on `inputs`, reporting on `fd`."""
    import torch

    from coursekit import calling
    from coursekit.sandbox.channel import write_frame

    # Only what the zygote loaded: the job cannot read the lab's files to import anything.
    # A job of cells alone (the sandbox's own tests) names no module.
    module = sys.modules[job["job_module"]] if job.get("calls") else None
    calls = {c.id: c for c in module.CALLS} if module else {}
    torch.set_num_threads(1)  # deterministic, and fair to parallel jobs
    runtime = dict(job["runtime"])
    calling.GPU_MEMORY_MB[0] = int(runtime.get("gpu_memory_mb", 0))
    if runtime.get("device") == "cuda":  # before any student code: CUDA, capped
        from coursekit.sandbox import gpu

        if gpu.start_job(int(job["gpu_memory_mb"])):
            runtime["device"], runtime["cuda_failed"] = "cpu", True
    p = {k: v.clone() for k, v in inputs.items()}
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns["__name__"] = "__main__"
    skip = set(job["skip_cells"])
    for i, source in enumerate(job["cells"]):
        if i in skip:
            continue
        write_frame(fd, "cell", i=i)
        try:
            shell.run_cell(source, store_history=False, silent=True)
        except BaseException:  # SystemExit and friends: the cell ends, grading goes on
            pass
    defs = {name: shell.user_ns.get(name) for name in job.get("definitions", ())}
    write_frame(fd, "cells_done")

    skip_calls = set(job["skip_calls"])
    for call_id in job.get("calls", ()):
        if call_id in skip_calls:
            continue
        write_frame(fd, "call", id=call_id)
        try:
            arrays = module.evaluate(calls[call_id], defs, p, runtime)
        except calling.StudentError as err:
            write_frame(fd, "error", id=call_id, kind=err.kind)
            continue
        except BaseException as exc:  # e.g. sys.exit inside the student's function
            write_frame(fd, "error", id=call_id, kind=f"raised {calling.exception_name(exc)}")
            continue
        write_frame(fd, "out", arrays=arrays, id=call_id)
    write_frame(fd, "done")
