"""Grade one submission: read it safely, run its code in the sandbox, judge in this process.

This process never executes student code and never unpickles anything from a
submission: the notebook is read as JSON, the student's results come back as plain
arrays (`numpy.load(allow_pickle=False)`), and every verdict and message is made here.
Both `coursekit grade` and the otter plugin (what `otter run` and Gradescope run) call
`grade_path`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

import course_config as cfg
from coursekit import calls as checks_calls
from coursekit import checks, sandbox
from coursekit.report import CaseResult, Report, gradescope_results  # noqa: F401
from coursekit.sandbox.gpu import DeviceError
from coursekit.submission import SubmissionError, gradable_cells, read_submission  # noqa: F401

_BUILTIN_EXC = r"(?:[A-Z][A-Za-z]*(?:Error|Exception|Exit|Interrupt|Warning|Iteration)|an exception)"
SAFE_KINDS = [re.compile(p) for p in (
    r"not implemented yet", r"not defined \(run the cell that defines it\)",
    rf"raised {_BUILTIN_EXC}", r"returned (?:[A-Za-z_]+|a numpy array|an object|None), not a torch\.Tensor",
    r"AttentionTest\(\.\.\.\) is not an nn\.Module", r"has parameters that cannot be read",
    re.escape(checks_calls.PARAMETERS_MISMATCH),
    r"returned a complex tensor, not a real one",
    r"forward must return a pair \(output, attn_output_weights\)",
    r"could not be set up for training", r"has no parameters to train",
    r"loss cannot be back-propagated",
    r"loss cannot be back-propagated: the output does not depend on the model's parameters",
    r"output has shape \((?:(?:B|\d{1,9})(?:, \d{1,9}){0,7})?\), not the query images' "
    r"\(B, 1, 784\): the training loss cannot be computed",
    r"output does not have the query images' shape \(B, 1, 784\): the training loss cannot be computed",
    re.escape(checks_calls.DEVICE_MIX), r"ran out of GPU memory \(a submission may use \d{1,7} MB\)",
)]


def case_points() -> dict[str, float]:
    """Each question's points split evenly over its hidden cases (as otter splits them)."""
    counts: dict[str, int] = {}
    for case in checks.CASES.values():
        counts[case.question] = counts.get(case.question, 0) + 1
    return {cid: cfg.AUTOGRADED_POINTS[c.question] / counts[c.question]
            for cid, c in checks.CASES.items()}


# --- grading -----------------------------------------------------------------------

def _claims(result: sandbox.JobResult) -> dict[str, Any]:
    """The job's claimed results as the verdicts take them: arrays, or a StudentError
    whose label is one of the grader's own (anything else the child wrote is 'failed')."""
    outputs: dict[str, Any] = {}
    for call, kind in result.errors.items():
        if call in checks.CALLS_BY_ID:
            safe = kind if any(p.fullmatch(kind) for p in SAFE_KINDS) else "failed"
            outputs[call] = checks.StudentError(safe)
    for call, arrays in result.outputs.items():
        if call in checks.CALLS_BY_ID and call not in outputs:
            outputs[call] = arrays
    return outputs


def _training_device(result: sandbox.JobResult, asked: str) -> str:
    """Where the training check ran, for the report (it changes no score): the job's claim
    (a 0-d int8 array naming one of `calls.DEVICES`) where it can be true of what the
    sandbox asked for, else what was asked; "" where the check did not finish."""
    arrays = result.outputs.get("training")
    if not arrays:
        return ""
    code = arrays.get("device")
    possible = (1, 2, 3) if asked == "cuda" else (0,)  # a CPU job cannot have tried CUDA
    if (isinstance(code, np.ndarray) and code.shape == () and code.dtype == np.int8
            and int(code) in possible):
        return checks_calls.DEVICES[int(code)]
    return asked


class Grader:
    """Grades submissions; holds the hidden inputs and training settings (load once)."""

    def __init__(self, bundle: checks.Arrays, training: dict[str, Any],
                 limits: sandbox.Limits | None = None, slot: int = 0,
                 require: str | None = None, gpu_number: int | None = None,
                 sandboxes: int = 1) -> None:
        import torch

        torch.set_num_threads(1)  # deterministic verdicts
        self.training = training
        self.probes = checks.probes(bundle, training)
        self.limits = limits or sandbox.Limits()
        self.slot = slot
        self.points = case_points()
        # The sandbox gets the hidden inputs as plain arrays, never this module or the checks.
        self.sandbox = sandbox.Sandbox({k: v.numpy() for k, v in self.probes.items()}, slot=slot,
                                       memory_mb=self.limits.memory_mb, require=require,
                                       device=training.get("device"), gpu_number=gpu_number,
                                       sandboxes=sandboxes)

    @property
    def isolation(self) -> str:
        """The isolation level student code runs under here (starts the sandbox)."""
        if not self.sandbox.level:
            self.sandbox.start()
        return self.sandbox.level

    def close(self) -> None:
        """Stop the sandbox's warm process."""
        self.sandbox.close()

    def grade_notebook(self, nb: nbformat.NotebookNode) -> Report:
        """Run the notebook's code in the sandbox and judge every hidden case."""
        job = {"cells": gradable_cells(nb), "calls": [c.id for c in checks.CALLS],
               # no budget, seed or target: the job only evaluates at the grader's points
               "training": {}}
        try:
            report = Report(isolation=self.isolation)
            result = self.sandbox.run_job(job, self.limits, lambda c: checks.CALLS_BY_ID[c].target)
        except (sandbox.SandboxError, sandbox.IsolationError, DeviceError) as exc:
            self.sandbox.close()  # the next submission starts a fresh one
            return Report(status="error", message=f"not graded: {exc}", isolation=self.sandbox.level,
                          cases=[CaseResult(cid, c.question, self.points[cid], False,
                                            f"{c.question}: not graded (the grader's sandbox failed)")
                                 for cid, c in checks.CASES.items()])
        outcome, outputs = result.outcome, _claims(result)
        report.device = _training_device(result, self.sandbox.device)
        for call, reason in outcome.failed_calls.items():
            if call in checks.CALLS_BY_ID:
                outputs[call] = checks.StudentError(reason)
        everything = outcome.failed_calls.get("*")
        for cid, case in checks.CASES.items():
            points = self.points[cid]
            missing = [c for c in case.calls if c not in outputs]
            if missing and everything:
                report.cases.append(CaseResult(cid, case.question, points, False,
                                               f"{case.question}: not graded, the submission {everything}"))
                continue
            try:
                checks.verdict(cid, outputs, self.probes)
            except checks.CheckFailed as exc:
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
            nb = read_submission(path)
        except SubmissionError as exc:
            return Report(status="bad input", message=str(exc),
                          cases=[CaseResult(cid, c.question, self.points[cid], False, str(exc))
                                 for cid, c in checks.CASES.items()])
        except OSError as exc:
            return Report(status="bad input", message=f"{path.name} cannot be read ({exc.strerror})",
                          cases=[CaseResult(cid, c.question, self.points[cid], False, "cannot be read")
                                 for cid, c in checks.CASES.items()])
        return self.grade_notebook(nb)


def course_bundle() -> Path:
    """The MNIST slice for grading on a TA's machine, made from the MNIST root once and cached."""
    from coursekit import data

    key = f"{cfg.BUNDLE_SEED}-{cfg.BUNDLE_TRAIN_QUERIES}-{cfg.BUNDLE_HELDOUT_QUERIES}"
    cache = cfg.REPO_ROOT / ".cache" / f"bundle-{key}.npz"
    if not cache.is_file():
        data.make_bundle(cache)
    return cache


def default_grader(slot: int = 0, bundle_path: Path | None = None,
                   settings_path: Path | None = None, require: str | None = None,
                   gpu_number: int | None = None, sandboxes: int = 1) -> Grader:
    """A grader with the course's training settings and the MNIST slice.

    Without paths (a TA's machine), the slice comes from `course_bundle()`; in the
    autograder the bundled files are passed in.
    """
    training = dict(cfg.TRAINING_CHECK)
    if settings_path is not None:
        training = json.loads(settings_path.read_text())
    training.pop("bundle_file", None)
    return Grader(checks.load_bundle(bundle_path or course_bundle()), training, slot=slot,
                  require=require, gpu_number=gpu_number, sandboxes=sandboxes)
