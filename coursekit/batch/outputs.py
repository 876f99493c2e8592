"""What a graded class leaves in the output folder: grades.csv, each student's feedback
(results.json as Gradescope shows it, report.md), the terminal summary and two charts.
Every text that comes from a submission is escaped for where it goes (CSV formulas,
Markdown and HTML).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from typing import Mapping, Protocol

from coursekit.batch.store import write_atomic
from coursekit.report import Report, gradescope_results


class Sheet(Protocol):
    """What the outputs say of the assignment (a `coursekit.course.Assignment`)."""

    title: str
    points: Mapping[str, float]  # autograded question -> points, in the grade book's order
    device_label: str  # what the lab calls its device call ("training check")


_MD_ESCAPES = str.maketrans({"\\": "\\\\", "`": "\\`", "|": "\\|", "*": "\\*", "[": "\\[",
                             "]": "\\]", "<": "&lt;", ">": "&gt;", "&": "&amp;"})


def _md_text(text: object) -> str:
    """Student-derived text for one Markdown line or table cell: no HTML, no Markdown
    markup, no line breaks (each run of control characters becomes one space)."""
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", str(text)).translate(_MD_ESCAPES)


def _csv_text(text: object) -> str:
    """A text cell no spreadsheet runs as a formula: a leading = + - @ tab or CR gets a '."""
    text = str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def markdown_report(student: str, report, sheet: Sheet) -> str:
    """A readable per-student report; student-derived text is escaped."""
    possible = sum(sheet.points.values())
    lines = [f"# {sheet.title}: {_md_text(student)}", "",
             f"**Score: {report.total:g} / {possible:g}** (autograded part; written answers are graded by hand)", ""]
    if report.status != "ok" or report.message:
        lines += [f"> {_md_text(report.status)}: {_md_text(report.message)}", ""]
    lines += ["| question | score | what failed |", "|---|---|---|"]
    feedback = report.feedback()
    for q, points in sheet.points.items():
        failed = "<br>".join(_md_text(line) for line in feedback.get(q, [])) or "all checks passed"
        lines.append(f"| {q} | {report.scores.get(q, 0):g} / {points:g} | {failed} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[tuple[str, object]], path: Path, questions: list[str]) -> None:
    """grades.csv, atomically: student, one column per question, total, status,
    isolation (the sandbox level that graded it), device (where the training check ran),
    message. Text cells are formula-safe."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", *questions, "total", "status", "isolation", "device", "message"])
    for student, r in rows:
        writer.writerow([_csv_text(student), *(f"{r.scores.get(q, 0):g}" for q in questions), f"{r.total:g}",
                         _csv_text(r.status), _csv_text(getattr(r, "isolation", "")),
                         _csv_text(getattr(r, "device", "")), _csv_text(r.message)])
    write_atomic(path, buf.getvalue())


def score_bins(totals: list[float], possible: float, step: float = 0.5) -> tuple[list[float], list[int]]:
    """Histogram bins centred on each multiple of `step` from 0 to `possible`: (centres,
    counts). A score counts in the bin of the nearest multiple (11.5 in 11.5, not 12)."""
    n = int(round(possible / step))
    counts = [0] * (n + 1)
    for total in totals:
        counts[min(max(int(round(total / step)), 0), n)] += 1
    return [i * step for i in range(n + 1)], counts


def plot_score_histogram(totals: list[float], possible: float, path: Path, title: str = "") -> dict[str, list]:
    """Draw the class's score histogram (half-point bins, whole submissions on the count
    axis) into `path`; return what was drawn: bin centres, bar heights, count ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    centres, counts = score_bins(totals, possible)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bars = ax.bar(centres, counts, width=0.45, color="#4C72B0", edgecolor="white")
    ax.set_xlim(-0.5, possible + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"autograded score (of {possible:g})")
    ax.set_ylabel("submissions")
    ax.set_title(f"{title}: scores" if title else "scores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    low, high = ax.get_ylim()
    drawn = {"centres": [float(b.get_x() + b.get_width() / 2) for b in bars],
             "heights": [int(b.get_height()) for b in bars],
             "count_ticks": [float(t) for t in ax.get_yticks() if low <= t <= high]}
    plt.close(fig)
    return drawn


def summarise(rows: list[tuple[str, object]], out_dir: Path, sheet: Sheet) -> str:
    """The terminal summary, plus a score histogram and per-question pass rates as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = [r.total for _, r in rows]
    n = len(rows) or 1
    possible = sum(sheet.points.values())
    lines = [f"{len(rows)} submissions, mean {sum(totals) / n:.2f} / {possible:g}"]
    lines.append(f"{'question':<10} {'mean':>6} {'full marks':>11}")
    rates = {}
    for q, points in sheet.points.items():
        full = sum(r.scores.get(q, 0) == points for _, r in rows)
        rates[q] = full / n
        mean = sum(r.scores.get(q, 0) for _, r in rows) / n
        lines.append(f"{q:<10} {mean:>6.2f} {full:>5}/{len(rows):<5}")
    statuses: dict[str, int] = {}
    for _, r in rows:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    lines.append("status: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    levels: dict[str, int] = {}
    for _, r in rows:
        level = getattr(r, "isolation", "") or "not run"
        levels[level] = levels.get(level, 0) + 1
    lines.append("isolation: " + ", ".join(f"{k} {v}" for k, v in sorted(levels.items())))
    devices: dict[str, int] = {}
    for _, r in rows:
        device = getattr(r, "device", "") or "not run"
        devices[device] = devices.get(device, 0) + 1
    lines.append(f"{sheet.device_label} on: " + ", ".join(f"{k} {v}" for k, v in sorted(devices.items())))

    plot_score_histogram(totals, possible, out_dir / "score_histogram.png", sheet.title)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(list(rates), [100 * v for v in rates.values()], color="#55A868")
    ax.set_ylabel("% with full marks")
    ax.set_ylim(0, 100)
    ax.set_title("Per-question pass rate")
    fig.tight_layout()
    fig.savefig(out_dir / "question_pass_rates.png", dpi=100)
    plt.close(fig)
    return "\n".join(lines)


def write_outputs(rows: list[tuple[str, Report]], out_dir: Path, sheet: Sheet,
                  visibility: Mapping[str, str]) -> None:
    """Each student's feedback folder (results.json, report.md) and grades.csv."""
    for sid, report in rows:
        fb = out_dir / "feedback" / sid  # a safe id: one plain folder name
        write_atomic(fb / "results.json", json.dumps(gradescope_results(report, visibility, sheet.device_label), indent=1))
        write_atomic(fb / "report.md", markdown_report(sid, report, sheet))
    write_csv(rows, out_dir / "grades.csv", list(sheet.points))
