"""The otter plugin that makes `otter run` (and Gradescope) grade with the trusted engine.

Stock otter runs the student's notebook and the hidden tests in one kernel, so student
code can patch the comparisons, read the tests, hang the grader or kill it, and the
results come back as a pickle made in that kernel. With this plugin (listed in the
autograder's otter_config.json):

- `before_grading`: the submission's `.OTTER_LOG` pickle is deleted unread, the grading
  folder is closed to other users, and the grader loads the bundled data;
- `before_execution`: the submission is graded by `coursekit.engine` (student code in a
  sandboxed child, verdicts here), and otter's kernel gets an empty notebook instead,
  so no student code runs inside otter at all;
- `after_grading`: otter's results are replaced by the engine's verdicts, one line per
  failed property.
"""

from __future__ import annotations

import importlib
import os
import stat
import sys
from pathlib import Path
from typing import Any

import nbformat
from otter.plugins import AbstractOtterPlugin

import course_config as cfg

# What the zip carries of the grader: these top-level modules always come from the zip.
ENGINE_TOP_LEVEL = ("coursekit", "course_config", "attention_checks")


def zip_source_dir(submission_path: str | Path) -> Path:
    """The folder the autograder zip was unpacked into (otter's `<ag>/source`, beside the
    `<ag>/submission` folder that holds the submission)."""
    return Path(submission_path).resolve().parent.parent / "source"


def load_zip_plugin(source: Path) -> Any:
    """Import the zip's own copy of this module, and with it the zip's engine, checks and
    course_config.py: the zip's folder goes first on `sys.path` and every grader module
    imported so far (from an installed coursekit, another checkout) is forgotten."""
    for name in list(sys.modules):
        if name.split(".")[0] in ENGINE_TOP_LEVEL:
            del sys.modules[name]
    folder = str(source.resolve())
    sys.path[:] = [folder] + [p for p in sys.path if p != folder]
    importlib.invalidate_caches()
    module = importlib.import_module("coursekit.otter_plugin")
    want = (source / "coursekit" / "otter_plugin.py").resolve()
    if Path(module.__file__).resolve() != want:
        raise ImportError(f"the autograder's own plugin {want} was not the one imported "
                          f"({module.__file__})")
    return module


SAFE_NOTEBOOK_NOTE = "# The submission was graded by coursekit's sandboxed grader; nothing runs here."


class TrustedGrading(AbstractOtterPlugin):
    """Grade with `coursekit.engine` and report its verdicts through otter's results.

    otter imports this class by name, so under `otter run` it may come from whatever
    coursekit is installed; the zip's own copy (plugin, engine, checks, settings) then
    takes over, so that a zip always grades by what it was built with.
    """

    def __new__(cls, submission_path: str, *args: Any, **kwargs: Any) -> "TrustedGrading":
        source = zip_source_dir(submission_path)
        own = source / "coursekit" / "otter_plugin.py"
        if own.is_file() and own.resolve() != Path(__file__).resolve():
            return load_zip_plugin(source).TrustedGrading(submission_path, *args, **kwargs)
        return super().__new__(cls)

    def _ag_dir(self) -> Path:
        return Path(self.submission_path).resolve().parent.parent

    def before_grading(self, config: Any) -> None:
        submission_dir = Path(self.submission_path).resolve().parent
        (submission_dir / ".OTTER_LOG").unlink(missing_ok=True)  # never unpickled
        ag_dir = self._ag_dir()
        if os.geteuid() == 0:
            ag_dir.chmod(0o700)  # the sandbox user may not read tests, data or results
            if str(ag_dir) == "/autograder":  # a throwaway Gradescope container
                _open_interpreter_path()
        from coursekit.engine import default_grader

        _neutralise_tests(submission_dir / "tests")
        files = ag_dir / "source" / "files"
        self.grader = default_grader(bundle_path=files / cfg.BUNDLE_FILE,
                                     settings_path=files / "attention_config.json")
        self.report = None
        # Our own strict, size-capped reading of the upload (otter's parse is not graded).
        from coursekit.engine import Report
        from coursekit.submission import SubmissionError, read_submission

        try:
            self.notebook = read_submission(Path(self.submission_path))
        except SubmissionError as exc:
            self.notebook = None
            self.report = Report(status="bad input", message=str(exc))
        except OSError as exc:
            self.notebook = None
            self.report = Report(status="bad input", message=f"the submission cannot be read ({exc.strerror})")

    def before_execution(self, submission: nbformat.NotebookNode) -> nbformat.NotebookNode:
        if self.notebook is not None:
            try:
                self.report = self.grader.grade_notebook(self.notebook)
            finally:
                self.grader.close()
        if self.report is not None and not self.report.cases:  # bad input: every case fails
            from coursekit.engine import CaseResult
            from coursekit import checks

            self.report.cases = [CaseResult(cid, c.question, self.grader.points[cid], False,
                                            self.report.message) for cid, c in checks.CASES.items()]
        safe = nbformat.v4.new_notebook(metadata=submission.get("metadata", {}))
        safe.cells = [nbformat.v4.new_code_cell(SAFE_NOTEBOOK_NOTE)]
        return safe

    def after_grading(self, results: Any) -> None:
        from otter.test_files.abstract_test import TestCase, TestCaseResult
        from otter.test_files.exception_test import ExceptionTestFile

        if self.report is None:
            return
        for question in cfg.AUTOGRADED_POINTS:
            cases = [c for c in self.report.cases if c.question == question]
            tcs = [TestCase(name=c.case, body="", hidden=True, points=c.points,
                            success_message=None, failure_message=None) for c in cases]
            tf = ExceptionTestFile(question, f"tests/{question}.py", tcs, all_or_nothing=False)
            tf.test_case_results = [
                TestCaseResult(test_case=tc, passed=c.passed,
                               message="✅ passed" if c.passed else f"❌ {c.message}")
                for tc, c in zip(tcs, cases)]
            results.results[question] = tf
        lines = [f"{self.report.status}: {self.report.message}"] if (
            self.report.status != "ok" or self.report.message) else []
        if self.report.isolation:
            lines.append(f"graded in the sandbox (isolation: {self.report.isolation})")
        results.output = "\n".join(lines) or None
        _write_engine_results(results, self.report)


def _write_engine_results(results: Any, report: Any) -> None:
    """Make otter write the engine's results.json for `report` (`engine.gradescope_results`,
    the same `coursekit grade` writes), which follows `course_config.RESULTS_VISIBILITY`.

    otter makes results.json in `GradingResults.to_gradescope_dict` from its own config:
    a visible "Public Tests" entry summing up every case not marked hidden, and one
    visibility for every question ("hidden", or "after_published" with show_hidden):
    neither `visible` nor `after_due_date`, no note that the work was graded, no
    top-level visibility. So the results object becomes a subclass whose to_gradescope_dict
    returns the engine's dict. It pickles (otter's results.pkl) as a plain
    GradingResults: reading it back needs otter only, not coursekit.
    """
    import copy
    import copyreg

    from otter.test_files import GradingResults

    from coursekit.engine import gradescope_results

    data = gradescope_results(report)

    class EngineResults(GradingResults):
        def to_gradescope_dict(self, ag_config: Any) -> dict[str, Any]:
            return copy.deepcopy(data)

        def __reduce_ex__(self, protocol: Any) -> tuple:
            return copyreg._reconstructor, (GradingResults, object, None), dict(self.__dict__)

    results.__class__ = EngineResults


PLACEHOLDER_TEST = """from otter.test_files import test_case

OK_FORMAT = False

name = {name!r}
points = {points!r}


@test_case(points={points!r}, hidden=True)
def graded_by_coursekit():
    raise AssertionError("not graded: the coursekit plugin replaces this result")
"""


def _neutralise_tests(tests_dir: Path) -> None:
    """Replace otter's test files with placeholders: the verdicts come from the engine, and
    nothing of the hidden tests (nor torch) needs to load in otter's kernel."""
    for question, points in cfg.AUTOGRADED_POINTS.items():
        path = tests_dir / f"{question}.py"
        if path.exists():
            path.write_text(PLACEHOLDER_TEST.format(name=question, points=points))


def _open_interpreter_path() -> None:
    """Let the sandbox user traverse (not list) the folders above the Python install."""
    path = Path(os.__file__).resolve().parent
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
