"""What the grader says about one submission: `Report` and its `CaseResult`s, and the
Gradescope results.json made from a report.

Every front door (the batch, the cluster, the otter and the nbgrader plugins) builds and
reads reports through this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    def possible(self) -> dict[str, float]:
        """Each question's points, in the cases' order: the sum of its cases' points (every
        report holds every case of the lab, passed or not)."""
        out: dict[str, float] = {}
        for c in self.cases:
            out[c.question] = round(out.get(c.question, 0.0) + c.points, 6)
        return out

    @property
    def scores(self) -> dict[str, float]:
        out = {q: 0.0 for q in self.possible}
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
        lines: dict[str, list[str]] = {q: [] for q in self.possible}
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


def gradescope_results(report: Any, visibility: dict[str, str]) -> dict[str, Any]:
    """The Gradescope results.json of a report: what `coursekit grade` writes per student
    and what the autograder (otter run, Gradescope) writes through the plugin.

    One entry says, visibly (the setting's "public"), that the work was graded (or why
    it could not be read) and the isolation level; the per-question entries (scores and
    one line per failed property), the total score and the grader's notes show when the
    setting's "hidden" says. Text that comes from the submission is HTML-escaped.
    """
    import html

    vis = visibility
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
    for q, possible in report.possible.items():
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
