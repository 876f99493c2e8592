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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

import course_config as cfg
from coursekit import calls as checks_calls
from coursekit import checks, sandbox
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


@dataclass
class CaseResult:
    """The verdict on one hidden test case."""

    case: str
    question: str
    points: float
    passed: bool
    message: str = ""


@dataclass
class Report:
    """Everything the grader says about one submission."""

    status: str = "ok"  # ok | timeout | bad input | error
    message: str = ""
    isolation: str = ""  # the sandbox level that ran the code (coursekit.sandbox.LEVELS)
    cases: list[CaseResult] = field(default_factory=list)
    device: str = ""  # where the training check ran (calls.DEVICES), "" where it did not run

    @property
    def scores(self) -> dict[str, float]:
        out = {q: 0.0 for q in cfg.AUTOGRADED_POINTS}
        for c in self.cases:
            if c.passed:
                out[c.question] = round(out[c.question] + c.points, 6)
        return out

    @property
    def total(self) -> float:
        return round(sum(self.scores.values()), 6)

    def feedback(self) -> dict[str, list[str]]:
        """One line per failed property, by question, in the cases' order.

        Cases that fail for the same cause say the same line (`lookup: not implemented
        yet` from all five lookup cases): it is listed once.
        """
        lines: dict[str, list[str]] = {q: [] for q in cfg.AUTOGRADED_POINTS}
        for c in self.cases:
            if not c.passed and c.message not in lines.setdefault(c.question, []):
                lines[c.question].append(c.message)
        return lines


# --- what students see (Gradescope's results.json) ----------------------------------

_GRADED = {
    "visible": "Your work was graded: the hidden tests' results are below.",
    "after_due_date": "Your work was graded; the hidden tests' results and your score appear after the due date.",
    "after_published": "Your work was graded; the hidden tests' results and your score appear after grades "
                       "are published.",
    "hidden": "Your work was graded; the hidden tests' results are not shown here.",
}


def gradescope_results(report: Any) -> dict[str, Any]:
    """The Gradescope results.json of a report: what `coursekit grade` writes per student
    and what the autograder (otter run, Gradescope) writes through the plugin.

    One entry says, visibly (the setting's "public"), that the work was graded (or why
    it could not be read) and the isolation level; the per-question entries (scores and
    one line per failed property), the total score and the grader's notes show when the
    setting's "hidden" says. Text that comes from the submission is HTML-escaped.
    """
    import html

    vis = cfg.results_visibility()
    esc = lambda text: html.escape(str(text), quote=False)  # noqa: E731
    if report.status == "bad input":
        public = [f"Your submission could not be read: {esc(report.message)}"]
    elif report.status == "error":
        public = ["Your submission could not be graded (a fault of the grader, not of your work): "
                  "please tell your instructor."]
    else:
        public = [_GRADED[vis["hidden"]]]
    if report.isolation:
        public.append(f"graded in the sandbox (isolation: {esc(report.isolation)})")
    if getattr(report, "device", ""):
        public.append(f"training check run on: {esc(report.device)}")
    tests: list[dict[str, Any]] = [{"name": "Public Tests", "visibility": vis["public"],
                                    "output": "\n".join(public)}]
    if report.message and report.status not in ("bad input", "error"):
        tests.append({"name": "Grading notes", "visibility": vis["hidden"],
                      "output": f"{esc(report.status)}: {esc(report.message)}"})
    feedback = report.feedback()
    for q, possible in cfg.AUTOGRADED_POINTS.items():
        cases = [c for c in report.cases if c.question == q]
        lines = [f"{sum(c.passed for c in cases)} of {len(cases)} hidden checks passed"]
        lines += [f"❌ {esc(line)}" for line in feedback.get(q, [])]
        tests.append({"name": q, "score": report.scores[q], "max_score": float(possible),
                      "visibility": vis["hidden"], "output": "\n".join(lines)})
    out: dict[str, Any] = {"score": report.total, "visibility": vis["hidden"],
                           "stdout_visibility": "hidden", "tests": tests}
    if report.status == "bad input":  # about the upload, not a verdict: always shown
        out["output"] = f"{esc(report.status)}: {esc(report.message)}"
    return out


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
