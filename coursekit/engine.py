"""Grade one submission: read it safely, run its code in the sandbox, judge in this process.

This process never executes student code and never unpickles anything from a
submission: the notebook is read as JSON, the student's results come back as plain
arrays (`numpy.load(allow_pickle=False)`), and every verdict and message is made here.
It knows no lab: the lab (`coursekit.lab.Lab`: its calls, cases and verdicts) and the
course's settings are passed in. Both `coursekit grade` and the otter and nbgrader plugins
call `Grader.grade_path`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import nbformat
import numpy as np

from coursekit import calling, sandbox
from coursekit import report as report_codec
from coursekit.lab import DEVICES, Arrays, CheckFailed, Lab
from coursekit.report import CaseResult, Report
from coursekit.sandbox.gpu import DeviceError
from coursekit.submission import Rules, SubmissionError, gradable_cells, read_submission


def _claims(lab: Lab, result: sandbox.JobResult) -> dict[str, Any]:
    """The job's claimed results as the verdicts take them: arrays, or a StudentError
    whose label is one of the grader's own (anything else the child wrote is 'failed')."""
    known = lab.calls_by_id
    kinds = calling.ERROR_KINDS + tuple(lab.error_kinds)
    outputs: dict[str, Any] = {}
    for call, kind in result.errors.items():
        if call in known:
            safe = kind if any(p.fullmatch(kind) for p in kinds) else "failed"
            outputs[call] = calling.StudentError(safe)
    for call, arrays in result.outputs.items():
        if call in known and call not in outputs:
            outputs[call] = arrays
    return outputs


def _device(lab: Lab, result: sandbox.JobResult, asked: str) -> str:
    """Where the lab's device call ran, for the report (it changes no score): the job's
    claim (a 0-d int8 array "device" naming one of `calling.DEVICES`) where it can be true
    of what the sandbox asked for, else what was asked; "" where the call did not finish."""
    device_calls = [c.id for c in lab.calls if c.device]
    arrays = result.outputs.get(device_calls[0]) if device_calls else None
    if not arrays:
        return ""
    code = arrays.get("device")
    possible = (1, 2, 3) if asked == "cuda" else (0,)  # a CPU job cannot have tried CUDA
    if (isinstance(code, np.ndarray) and code.shape == () and code.dtype == np.int8
            and int(code) in possible):
        return DEVICES[int(code)]
    return asked


class Grader:
    """Grades submissions of one lab; holds its hidden inputs (made once).

    `points` maps each question to its points (split evenly over its cases); `device` is
    where the lab's device calls run ("auto", "cpu" or "cuda").
    """

    def __init__(self, lab: Lab, data: Arrays, points: Mapping[str, float],
                 limits: sandbox.Limits | None = None, slot: int = 0,
                 require: str | None = None, gpu_number: int | None = None,
                 sandboxes: int = 1, device: str = "auto",
                 policy: sandbox.Policy | None = None, rules: Rules = Rules()) -> None:
        import torch

        torch.set_num_threads(1)  # deterministic verdicts
        self.lab = lab
        self.probes = lab.inputs(data, lab.settings)
        self.limits = limits or sandbox.Limits()
        self.slot = slot
        self.rules = rules
        self.points = lab.case_points(points)
        self.cases = lab.case_table(points)  # what its reports hold (coursekit.report)
        # The sandbox gets the hidden inputs as plain arrays, never the checks.
        self.sandbox = sandbox.Sandbox({k: v.numpy() for k, v in self.probes.items()}, slot=slot,
                                       memory_mb=self.limits.memory_mb, require=require,
                                       device=device, gpu_number=gpu_number, sandboxes=sandboxes,
                                       preload=list(lab.preload),
                                       job_module=(str(lab.folder), lab.job_module),
                                       policy=policy or sandbox.Policy())

    @property
    def isolation(self) -> str:
        """The isolation level student code runs under here (starts the sandbox)."""
        if not self.sandbox.level:
            self.sandbox.start()
        return self.sandbox.level

    def close(self) -> None:
        """Stop the sandbox's warm process."""
        self.sandbox.close()

    def all_failed(self, status: str, message: str, line: Callable[[str], str] | None = None,
                   isolation: str = "") -> Report:
        """A report with every case failed, each saying `line(question)` (default: `message`)."""
        return report_codec.all_failed(status, message, self.cases, case_message=line, isolation=isolation)

    def grade_notebook(self, nb: nbformat.NotebookNode) -> Report:
        """Run the notebook's code in the sandbox and judge every hidden case."""
        lab = self.lab
        # no budget, seed or target: the job only calls the student's code on the inputs
        job = {"cells": gradable_cells(nb, ignore_tag=self.rules.ignore_tag), "calls": [c.id for c in lab.calls],
               "long_calls": [c.id for c in lab.calls if c.long],
               "device_calls": [c.id for c in lab.calls if c.device],
               "definitions": list(lab.definitions), "job_module": lab.job_module}
        targets = {c.id: c.target for c in lab.calls}
        try:
            report = Report(isolation=self.isolation)
            result = self.sandbox.run_job(job, self.limits, lambda c: targets[c])
        except (sandbox.SandboxError, sandbox.IsolationError, DeviceError) as exc:
            self.sandbox.close()  # the next submission starts a fresh one
            return self.all_failed("error", f"not graded: {exc}",
                                   lambda q: f"{q}: not graded (the grader's sandbox failed)",
                                   isolation=self.sandbox.level)
        outcome, outputs = result.outcome, _claims(lab, result)
        report.device = _device(lab, result, self.sandbox.device)
        for call, reason in outcome.failed_calls.items():
            if call in targets:
                outputs[call] = calling.StudentError(reason)
        everything = outcome.failed_calls.get("*")
        for cid in self.cases:  # the case table's order: the course's questions
            case, points = lab.cases[cid], self.points[cid]
            missing = [c for c in case.calls if c not in outputs]
            if missing and everything:
                report.cases.append(CaseResult(cid, case.question, points, False,
                                               f"{case.question}: not graded, the submission {everything}"))
                continue
            try:
                case.verdict(outputs, self.probes)
            except CheckFailed as exc:
                report.cases.append(CaseResult(cid, case.question, points, False, str(exc)))
            except Exception:  # a verdict must never crash grading
                report.cases.append(CaseResult(cid, case.question, points, False,
                                               f"{case.question}: the result could not be judged"))
            else:
                report.cases.append(CaseResult(cid, case.question, points, True))
        if outcome.timed_out:
            report.status, report.message = "timeout", (
                f"timed out after {self.limits.total_s:.0f} s; points are given for what "
                "could be judged before that")
        elif outcome.skipped_cells or outcome.failed_calls:
            reasons = sorted(set(outcome.skipped_cells.values()) | set(outcome.failed_calls.values()))
            report.message = "some code was stopped: " + ", ".join(reasons)
        return report

    def grade_path(self, path: Path) -> Report:
        """Grade a submission file; bad input gets a report with status 'bad input'."""
        try:
            nb = read_submission(path, self.rules)
        except SubmissionError as exc:
            return self.all_failed("bad input", str(exc))
        except OSError as exc:
            return self.all_failed("bad input", f"{path.name} cannot be read ({exc.strerror})",
                                   lambda q: "cannot be read")
        return self.grade_notebook(nb)
