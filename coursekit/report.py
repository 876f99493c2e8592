"""What the grader says about one submission: `Report` and its `CaseResult`s, their one
JSON codec (`encode`, a strict `decode`), the all-failed report (`all_failed`), and the
Gradescope results.json made from a report.

Every front door (the batch, the cluster, the otter and the nbgrader plugins) builds,
stores and reads reports through this module. A report that crosses a process boundary
(a worker's, a stored one) is decoded strictly: its size is bounded before parsing, every
field's type and value is checked, and anything else is one `ReportError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from coursekit.lab import DEVICES

STATUSES = ("ok", "timeout", "bad input", "error")
MAX_REPORT_BYTES = 4 << 20
MAX_CASES = 1000
MAX_TEXT_CHARS = 10_000  # a message
MAX_NAME_CHARS = 100  # a status, a case id, a question, an isolation level, a device
_FIELDS = {"status", "message", "isolation", "cases", "device"}
_CASE_FIELDS = {"case", "question", "points", "passed", "message"}


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

    status: str = "ok"  # one of STATUSES
    message: str = ""
    isolation: str = ""  # the sandbox level that ran the code (coursekit.sandbox.LEVELS)
    cases: list[CaseResult] = field(default_factory=list)
    device: str = ""  # where the lab's device call ran (lab.DEVICES), "" where it did not run

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


# --- building, encoding and decoding ------------------------------------------------

Cases = Mapping[str, tuple[str, float]]  # case id -> (question, points): `Lab.case_table`


def all_failed(status: str, message: str, cases: Cases, *,
               case_message: str | Callable[[str], str] | None = None, isolation: str = "") -> Report:
    """A report in which every case failed: what a submission that could not be read or
    graded gets. `cases`: the lab's case table; each case's message is `case_message` (a
    text, or made from the case's question), else `message`."""
    if status not in STATUSES:
        raise ValueError(f"unknown report status {status!r}")
    table = cases
    line = case_message if case_message is not None else message
    return Report(status=status, message=message, isolation=isolation, cases=[
        CaseResult(cid, question, points, False, line(question) if callable(line) else line)
        for cid, (question, points) in table.items()])


def encode(report: Report) -> str:
    """The report as JSON text (what `decode` reads back)."""
    return json.dumps(asdict(report))


class ReportError(ValueError):
    """A report that cannot be decoded: too large, not JSON, or a field of the wrong type
    or value. The message names what is wrong and never quotes the report."""


def _no_constant(name: str) -> Any:
    raise ReportError(f"the report holds {name}, which is not a number")


def _text(value: Any, what: str, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ReportError(f"{what} is not a text of at most {limit} characters")
    return value


def _fields(data: Any, what: str, required: set[str], allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ReportError(f"{what} is not an object")
    if missing := sorted(required - set(data)):
        raise ReportError(f"{what} lacks {', '.join(missing)}")
    if unknown := set(data) - allowed:
        raise ReportError(f"{what} has {len(unknown)} unknown field(s)")
    return data


def _case(data: Any, cases: Cases) -> CaseResult:
    data = _fields(data, "a case", _CASE_FIELDS, _CASE_FIELDS)
    question = _text(data["question"], "a case's question", MAX_NAME_CHARS)
    if question not in {q for q, _ in cases.values()}:
        raise ReportError("a case's question is not one of the assignment's")
    points = data["points"]
    if (isinstance(points, bool) or not isinstance(points, (int, float)) or not math.isfinite(points)
            or not 0 <= points <= sum(p for _, p in cases.values()) + 1e-9):
        raise ReportError("a case's points are not a number within the assignment's points")
    if not isinstance(data["passed"], bool):
        raise ReportError("a case's passed is not true or false")
    return CaseResult(_text(data["case"], "a case's id", MAX_NAME_CHARS), question, float(points),
                      data["passed"], _text(data["message"], "a case's message"))


def decode(text: str | bytes, cases: Cases) -> Report:
    """The report `encode` wrote, checked strictly: at most MAX_REPORT_BYTES, JSON, the
    fields of a Report and nothing else, a known status, at most MAX_CASES cases of the
    questions of `cases` (the lab's case table) within its points, bounded texts, a device
    of `lab.DEVICES`. ReportError (a ValueError) for anything else."""

    if not isinstance(text, (str, bytes)):
        raise ReportError("the report is not text")
    if len(text) > MAX_REPORT_BYTES:  # a str's length is at most its UTF-8 size
        raise ReportError(f"the report is larger than {MAX_REPORT_BYTES} bytes")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ReportError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting
        raise ReportError(f"the report is not JSON ({type(exc).__name__})") from None
    data = _fields(data, "the report", {"status", "message", "cases"}, _FIELDS)
    status = data["status"]
    if not isinstance(status, str) or status not in STATUSES:
        raise ReportError(f"the report's status is not one of {', '.join(STATUSES)}")
    table, cases = cases, data["cases"]
    if not isinstance(cases, list) or len(cases) > MAX_CASES:
        raise ReportError(f"the report's cases are not a list of at most {MAX_CASES}")
    device = data.get("device", "")
    if device not in ("", *DEVICES.values()):
        raise ReportError("the report's device is not one a device call runs on")
    return Report(status=status, message=_text(data["message"], "the report's message"),
                  isolation=_text(data.get("isolation", ""), "the report's isolation", MAX_NAME_CHARS),
                  cases=[_case(c, table) for c in cases], device=device)


# --- what students see (Gradescope's results.json) ----------------------------------

_GRADED = {
    "visible": "Your work was graded: the hidden tests' results are below.",
    "after_due_date": "Your work was graded; the hidden tests' results and your score appear after the due date.",
    "after_published": "Your work was graded; the hidden tests' results and your score appear after grades "
                       "are published.",
    "hidden": "Your work was graded; the hidden tests' results are not shown here.",
}


def gradescope_results(report: Any, visibility: Mapping[str, str],
                       device_label: str = "device check") -> dict[str, Any]:
    """The Gradescope results.json of a report: what `coursekit grade` writes per student
    and what the autograder (otter run, Gradescope) writes through the plugin.

    One entry says, visibly (the setting's "public"), that the work was graded (or why
    it could not be read) and the isolation level; the per-question entries (scores and
    one line per failed property), the total score and the grader's notes show when the
    setting's "hidden" says (`visibility`: the course's). Where the lab's device call ran is
    said under the lab's name for it (`Lab.device_label`). Text that comes from the
    submission is HTML-escaped.
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
        public.append(f"{esc(device_label)} run on: {esc(report.device)}")
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
