"""nbgrader's side of the course: our grader as nbgrader's executor, and feedback that
keeps the hidden tests hidden.

`configure(c)` is what the course's two-line `nbgrader_config.py` calls. It changes
nbgrader's preprocessor lists and autograde's exporter and nothing else (the exporter, at
the start of each autograde run, also sets that run's ignore list and timestamp reader:
`nbgrader_folder`), so `nbgrader generate_assignment`, `autograde`, `generate_feedback` and
`export` are the standard commands:

- `nbgrader autograde` runs `SandboxedGrading` in place of nbgrader's `Execute`: the
  submission is graded by the same engine as `otter run` and `coursekit grade` (student
  code in a sandboxed child, verdicts made outside it, the course's limits), and
  each hidden-check cell gets either no output (pass) or a one-line error (fail), which
  nbgrader's own `SaveAutoGrades` turns into points. Stock nbgrader would run the hidden
  tests inside the student's kernel, where the student's code can patch them.
- `nbgrader generate_feedback` first strips the hidden test regions (nbgrader's
  `ClearHiddenTests`, which it does not run for feedback by default) and reduces every
  error in a test cell to one line (`OneLineErrors`): a traceback would quote hidden code.
- `nbgrader autograde` reads each submission as hostile bytes (`nbgrader_read`) and, before
  nbgrader's own sanitising, rebuilds it from the course's cells (`nbgrader_repair`): no
  notebook, whatever it does to its cells or metadata, stops the run or changes its
  points; what was repaired (or why nothing could be read) is one line at the top of that
  student's graded notebook and feedback.
- `nbgrader autograde` follows no link of a submitted folder and copies no FIFO of it
  (`nbgrader_folder`), and reads timestamp.txt as hostile bytes (`nbgrader_timestamp`): a
  bad one counts as no timestamp. What was left out is in the same line.
"""

from __future__ import annotations

import os
import string
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from coursekit.nbgrader_folder import FolderCheckedExporter
from coursekit.nbgrader_read import unreadable_reason
from coursekit.nbgrader_repair import NOTE_KEY, RebuildFromCourse
from coursekit.report import Report, all_failed
from coursekit.submission import SubmissionError

_GRADERS: dict[str, Any] = {}  # one warm grader per assignment and nbgrader process


def _grader(assignment: str) -> Any:
    """The grader of the course's lab `assignment` (made once: inputs and data loaded once)."""
    if assignment not in _GRADERS:
        from coursekit import course

        c = course.load()
        _GRADERS[assignment] = c.grader(c.assignment(assignment))
    return _GRADERS[assignment]


def _is_test_cell(cell: nbformat.NotebookNode) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _error(message: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename="CheckFailed", evalue=message,
                                  traceback=[f"CheckFailed: {message}"])


class SandboxedGrading(NbGraderPreprocessor):
    """Grade the notebook with coursekit's engine and write each check's verdict into its
    test cell (in place of nbgrader's Execute, which would run hidden tests in the
    student's kernel)."""

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict) -> tuple[Any, dict]:
        """Write every test cell's verdict, and the repair note (if any) at the top."""
        if unreadable_reason(resources) is not None:
            # this is the notebook our sanitising step wrote: unreadable means a grader fault
            raise RuntimeError(f"coursekit: the sanitised notebook cannot be read: "
                               f"{unreadable_reason(resources)}")
        # written by RebuildFromCourse, which drops the student's notebook metadata
        note = nb.metadata.get(NOTE_KEY, {})
        grader = _grader(resources["nbgrader"]["assignment"])
        if note.get("unreadable"):
            report = all_failed("bad input", "not graded: your notebook could not be read", grader.cases)
        else:
            try:
                report = grader.grade_notebook(nb)
            except SubmissionError as exc:  # cannot happen after the rebuild; never fatal
                report = all_failed("bad input", f"not graded: {exc}", grader.cases)
            else:
                self.log.info("coursekit: %s", ", ".join(f"{q} {s:g}" for q, s in report.scores.items()))
        self._write(nb, report)
        if note.get("note"):
            nb.cells.insert(0, note_cell(note["note"]))
        return nb, resources

    @staticmethod
    def _write(nb: nbformat.NotebookNode, report: Report) -> None:
        """Each test cell's outputs: nothing (pass) or its case's one error line."""
        results = {c.case: c for c in report.cases}
        # a note on grading (a cell that was stopped) is said once; a notebook that could not
        # be read says why in every check's line already
        message = report.message if report.status != "bad input" else ""
        first = True
        for cell in nb.cells:
            if not _is_test_cell(cell):
                continue
            result = results.get(cell.metadata["nbgrader"].get("grade_id"))
            if result is None:
                cell.outputs = [_error("this cell is not a check of this assignment")]
            else:
                cell.outputs = [] if result.passed else [_error(result.message)]
            if first and message:  # e.g. a cell that was stopped: say so once
                cell.outputs.insert(0, nbformat.v4.new_output(
                    "stream", name="stdout", text=f"grader: {message}\n"))
            first = False


def note_cell(line: str) -> nbformat.NotebookNode:
    """The Markdown cell at the top of a graded notebook that tells the student, in one
    line, what was repaired or why nothing was graded. The line may quote the submission:
    every ASCII punctuation mark is backslash-escaped, so it renders as plain text (HTML
    escaping alone would still let `[x](javascript:...)` become a link)."""
    text = "".join("\\" + ch if ch in string.punctuation else ch for ch in line)
    cell = nbformat.v4.new_markdown_cell(f"**Grader note:** {text}")
    cell["id"] = "coursekit-grader-note"
    return cell


class OneLineErrors(NbGraderPreprocessor):
    """In test cells keep only errors, each as one line; drop anything else they printed."""

    def preprocess_cell(self, cell: nbformat.NotebookNode, resources: dict,
                        index: int) -> tuple[Any, dict]:
        if _is_test_cell(cell):
            cell.outputs = [_error(str(o.get("evalue", "")).splitlines()[0] if o.get("evalue")
                                   else o.get("ename", "error"))
                            for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        return cell, resources


def check(assignment: str, case_id: str, **defs: Any) -> None:
    """Run the hidden check `case_id` of the course's lab `assignment` in this kernel (what a
    hidden test cell does when someone runs the source notebook by hand, or when a course
    chooses nbgrader's stock executor): returns, or raises the check's CheckFailed."""
    from coursekit import course

    a = course.load().assignment(assignment)
    lab = a.lab()
    if case_id not in lab.cases:
        raise KeyError(f"{a.folder}: the lab has no hidden check {case_id!r}")
    lab.run_case(case_id, defs, lab.inputs(lab.load_data(a.data_path()), lab.settings))


def configure(c: Any) -> None:
    """Fill nbgrader's config `c` from the course's settings (called by nbgrader_config.py)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests,
                                        ClearOutput, DeduplicateIds, GetGrades, IgnorePattern,
                                        LimitOutput, OverwriteCells, OverwriteKernelspec,
                                        SaveAutoGrades)

    # nbgrader runs the `alembic` command for its gradebook; from an unactivated venv
    # (`.venv/bin/nbgrader ...`) it is not on PATH, so put this interpreter's bin first.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    from coursekit import course

    settings = course.load()
    c.CourseDirectory.course_id = settings.nbgrader_course_id
    # For nbgrader's own executor (used only if a course restores it, and by
    # `nbgrader validate`): a cell may run as long as a lab's long call (`Call.long`) is allowed to.
    c.Execute.timeout = settings.limits.long_call_s
    c.RebuildFromCourse.ignore_tag = settings.rules.ignore_tag
    # One submission never stops the others: check each folder (no link followed, no bad
    # timestamp read) and read each file as hostile input, then rebuild it from the course's
    # cells before nbgrader's own steps (which stay, and find nothing left to change or reject).
    c.Autograde.exporter_class = FolderCheckedExporter
    c.Autograde.sanitize_preprocessors = [
        RebuildFromCourse, ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells,
        CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [
        SandboxedGrading, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
        SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    c.GenerateFeedback.preprocessors = [
        ClearHiddenTests, OneLineErrors, GetGrades, CSSHTMLHeaderPreprocessor]
