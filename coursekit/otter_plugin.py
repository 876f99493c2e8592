"""The otter plugin that makes `otter run` (and Gradescope) grade with the trusted engine.

Stock otter runs the student's notebook and the hidden tests in one Jupyter kernel, as
the grader's user, with the submission's folder as its working directory: student code
can patch the comparisons, read the tests, hang the grader or kill it; any `.py` file of
the upload (`otter.py`, `ipykernel_launcher.py`) shadows what that kernel imports; and
the results come back as a pickle the kernel wrote, which otter's process then loads.
With this plugin (listed in the autograder's otter_config.json):

- `before_grading`: the submission's `.OTTER_LOG` pickle is deleted unread, the grading
  folder is closed to other users, the grader loads the bundled data (from the zip's
  `grader_files/`, which otter never copies beside the upload), the upload's notebook is
  read strictly and graded by `coursekit.engine` (student code in a sandboxed child,
  verdicts here), and otter's notebook executor is replaced for this run, so otter
  starts no kernel, runs nothing of the upload and unpickles nothing;
- the replaced executor returns otter's results object filled with the engine's
  verdicts, one line per failed property, and files of the upload other than the
  notebook are named, in one line, as ignored.
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

# What the zip carries of the grader: these top-level modules always come from the zip
# (and the lab's package, `zip_labs`).
ENGINE_TOP_LEVEL = ("coursekit", "course_config")
# Where a grader fault leaves no course settings to follow: say so at once, show no score.
FAULT_VISIBILITY = {"public": "visible", "hidden": "hidden"}


def zip_source_dir(submission_path: str | Path) -> Path:
    """The folder the autograder zip was unpacked into (otter's `<ag>/source`, beside the
    `<ag>/submission` folder that holds the submission). The path is never resolved: the
    notebook may be a link an upload made, and following it would let the upload choose
    the "zip's" folder — and with it the plugin imported, the data and the settings."""
    return Path(os.path.abspath(submission_path)).parent.parent / "source"


def zip_labs(source: Path) -> list[str]:
    """The labs the zip unpacked at `source` carries (`source/<lab>/lab.toml`: the build puts one)."""
    return sorted(p.parent.name for p in (source / "source").glob("*/lab.toml"))


def load_zip_plugin(source: Path) -> Any:
    """Import the zip's own copy of this module, and with it the zip's engine, lab and
    course_config.py: the zip's folder goes first on `sys.path` and every grader module
    imported so far (from an installed coursekit, another checkout) is forgotten."""
    forget = {*ENGINE_TOP_LEVEL, *zip_labs(source)}
    for name in list(sys.modules):
        if name.split(".")[0] in forget:
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


GRADER_FILES = "grader_files"  # the zip's folder for the bundled data and settings (build.finish_zip)
# What otter itself puts beside the upload's notebook: not the student's files.
OTTER_MADE = frozenset({"tests", "__init__.py", ".OTTER_LOG"})
RUNNER_MODULE = "otter.run.run_autograder.runners.python_runner"


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
        return Path(os.path.abspath(self.submission_path)).parent.parent  # never resolved: see zip_source_dir

    def before_grading(self, config: Any) -> None:
        # First: whatever happens below, otter then starts no kernel and loads no pickle.
        _replace_otter_executor(self._results)
        submission_dir = Path(os.path.abspath(self.submission_path)).parent  # otter's cwd
        _delete_unread(submission_dir / ".OTTER_LOG")  # a pickle: never loaded
        self.ignored = upload_extras(submission_dir, Path(self.submission_path).name)
        ag_dir = self._ag_dir()
        if os.geteuid() == 0:
            ag_dir.chmod(0o700)  # the sandbox user may not read tests, data or results
            if str(ag_dir) == "/autograder":  # a throwaway Gradescope container
                _open_interpreter_path()
        from coursekit.report import all_failed

        self.cases: dict = {}  # the lab's case table, once the zip's lab is loaded
        self.visibility, self.device_label = FAULT_VISIBILITY, "device check"
        try:
            self.report = self._grade(ag_dir)
        except Exception as exc:  # noqa: BLE001 - a fault of ours: still a results.json
            self.report = all_failed("error", f"not graded: the grader failed "
                                              f"({type(exc).__name__}: {exc})"[:500], self.cases)
        if self.report.status == "error":  # the grader's fault: the instructor's log says why
            print(f"coursekit: {self.report.message}", flush=True)

    def _grade(self, ag_dir: Path) -> Any:
        """The engine's report on the upload's notebook: read strictly and size-capped by
        `Grader.grade_path` (a link or anything but a regular file is refused; otter's own
        parse is not graded), graded in the sandbox."""
        from coursekit import course

        source = ag_dir / "source"
        labs = zip_labs(source)
        if len(labs) != 1:
            raise RuntimeError(f"the autograder zip holds {len(labs)} labs under source/, not one")
        c = course.load(source / "course_config.py", only=labs[0])
        a = c.assignment(labs[0])
        lab = a.lab()
        self.cases, self.visibility, self.device_label = lab.case_table(a.points), c.visibility, lab.device_label
        grader = c.grader(a, data_path=source / GRADER_FILES / a.data_file)
        try:
            return grader.grade_path(Path(self.submission_path))
        finally:
            grader.close()

    def _results(self, submission_path: str, **_otter_settings: Any) -> Any:
        """What otter's runner gets in place of `otter.execute.grade_notebook`: its results
        object holding the engine's verdicts; no kernel, no tests run, no pickle read."""
        from otter.test_files import GradingResults

        results = GradingResults([])
        self.after_grading(results)
        return results

    def before_execution(self, submission: nbformat.NotebookNode) -> nbformat.NotebookNode:
        """Reached only if otter's executor could not be replaced: refuse to start a kernel."""
        from otter.run.run_autograder.utils import OtterRuntimeError

        raise OtterRuntimeError("the autograder refused to run the notebook in otter's own kernel "
                                "(its executor could not be replaced); nothing was graded")

    def after_grading(self, results: Any) -> None:
        from otter.test_files.abstract_test import TestCase, TestCaseResult
        from otter.test_files.exception_test import ExceptionTestFile

        if self.report is None:
            return
        for question in self.report.possible:
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
        notes = [ignored_line(self.ignored)] if self.ignored else []
        lines += notes
        if self.report.isolation:
            lines.append(f"graded in the sandbox (isolation: {self.report.isolation})")
        results.output = "\n".join(lines) or None
        _write_engine_results(results, self.report, notes, self.visibility, self.device_label)


def _write_engine_results(results: Any, report: Any, notes: list[str], visibility: dict[str, str],
                          device_label: str) -> None:
    """Make otter write the engine's results.json for `report` (`engine.gradescope_results`,
    the same `coursekit grade` writes), which follows `visibility` (the course's
    RESULTS_VISIBILITY);
    `notes` about the upload go to its always-visible entry.

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
    import html

    from otter.test_files import GradingResults

    from coursekit.report import gradescope_results

    data = gradescope_results(report, visibility, device_label)
    if notes:  # file names come from the upload: escaped like every text of it
        data["tests"][0]["output"] += "\n" + html.escape("\n".join(notes), quote=False)

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


def placeholder_test(question: str, points: float) -> str:
    """The test file the zip carries for `question` (build.finish_zip): the verdicts come
    from the engine, so nothing of the hidden tests travels where otter copies tests."""
    return PLACEHOLDER_TEST.format(name=question, points=points)


def _delete_unread(path: Path) -> None:
    """Remove a file or link of the upload without opening it (a folder is left: otter
    only loads a regular file there)."""
    if path.is_symlink() or path.is_file():
        path.unlink()


def upload_extras(submission_dir: Path, notebook: str) -> list[str]:
    """The names of the upload's files besides its notebook (and what otter put there);
    read from the folder listing only: nothing is opened or followed."""
    try:
        names = os.listdir(submission_dir)
    except OSError:
        return []
    return sorted(n for n in names if n != notebook and n not in OTTER_MADE)


def ignored_line(names: list[str], shown: int = 8) -> str:
    """One line naming the upload's ignored files (names made printable and short)."""
    safe = [ascii(n)[1:-1][:60] for n in names[:shown]]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    noun = "file" if len(names) == 1 else "files"
    return (f"ignored {len(names)} {noun} of the upload besides the notebook: "
            f"{', '.join(safe)}{more}")


def _replace_otter_executor(results: Any) -> None:
    """Make otter's Python runner call `results` instead of `otter.execute.grade_notebook`
    for this run: the stock executor starts a Jupyter kernel in the upload's folder and
    loads the pickle that kernel writes. Refuse (an autograder error in results.json,
    nothing graded by otter) if this otter's runner is not the one we know."""
    from otter.run.run_autograder.utils import OtterRuntimeError

    runner = sys.modules.get(RUNNER_MODULE)
    if runner is None or not callable(getattr(runner, "grade_notebook", None)):
        raise OtterRuntimeError(f"this otter has no {RUNNER_MODULE}.grade_notebook to replace: "
                                "the autograder will not let otter run the notebook itself")
    runner.grade_notebook = results


def _open_interpreter_path() -> None:
    """Let the sandbox user traverse (not list) the folders above the Python install."""
    path = Path(os.__file__).resolve().parent
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
