"""The `grader` object of the student's notebook: otter's checks, told in one line each.

Shipped to students as `lab_notebook.py`: the release's first cell writes it, `lab_checks.py`
(coursekit/public_checks.py) and the public test files next to the notebook, then makes
`grader = LabNotebook(...)`. It is otter's `Notebook` with three changes students need:

- `check` and `check_all` print one line per failed property (otter prints its header,
  the failing test line and the message, several lines per failure);
- the notebook is found even when renamed (`attention_basics (1).ipynb`, a browser
  re-download): VS Code's and Jupyter's own record of the open notebook first, then the
  folder; otter alone raises FileNotFoundError and every later check a NameError;
- `export` on Colab, where otter refuses to export, says exactly what to upload (the
  `.ipynb` from File → Download), and elsewhere exports the notebook it found.

Imports only otter, IPython and the standard library besides `lab_checks`.
"""

import glob
import html
import os
import sys

import otter
from otter.check.utils import IPythonInterpreter

try:
    import lab_checks  # next to the student's notebook
except ImportError:  # inside coursekit (its tests)
    from coursekit import public_checks as lab_checks

COLAB_SUBMIT = ("To submit from Colab: save (File → Save), then File → Download → Download .ipynb, "
                "and upload that .ipynb file to the assignment on Gradescope.")
NO_NOTEBOOK_SUBMIT = ("Could not find this notebook's file to export it: save it, then download it "
                      "(File → Download) and upload that .ipynb file to the assignment on Gradescope.")


def _user_ns():
    try:
        from IPython import get_ipython
    except ImportError:
        return {}
    shell = get_ipython()
    return getattr(shell, "user_ns", {}) if shell is not None else {}


def find_notebook(expected):
    """The path of the running notebook, or None: the editor's record, `expected`, the folder."""
    ns = _user_ns()
    for candidate in (ns.get("__vsc_ipynb_file__"), ns.get("__session__"),
                      os.environ.get("JPY_SESSION_NAME"), expected):
        if isinstance(candidate, str) and candidate.endswith(".ipynb") and os.path.isfile(candidate):
            return candidate
    notebooks = sorted(glob.glob("*.ipynb"))
    if len(notebooks) == 1:
        return notebooks[0]
    stem = os.path.splitext(os.path.basename(expected or ""))[0]
    mine = [nb for nb in notebooks if stem and nb.startswith(stem)]
    return max(mine, key=os.path.getmtime) if mine else None


class CheckResult:
    """What a check says: one line per failed property, or one line that all passed."""

    def __init__(self, lines, passed):
        self.lines = list(lines)
        self.passed = passed

    def __repr__(self):
        return "\n".join(self.lines)

    def _repr_html_(self):
        return "<pre>" + html.escape(repr(self)) + "</pre>"


class LabNotebook(otter.Notebook):
    """otter's Notebook for this lab (see the module docstring)."""

    def __init__(self, nb_path=None, tests_dir="./tests"):
        self._expected_notebook = nb_path
        super().__init__(find_notebook(nb_path), tests_dir=tests_dir)

    def _question_lines(self, question, global_env):
        name = lab_checks.QUESTIONS.get(question)
        if name is not None and name not in global_env:
            return [f"❌ {question}: `{name}` is not defined yet: run the cell that defines it first"]
        lab_checks.LAST.pop(question, None)
        result = super().check(question, global_env)
        if result.passed_all:
            return [f"✅ {question}: every public check passed (the hidden tests decide the grade)"]
        lines = lab_checks.LAST.pop(question, None)
        if not lines:  # the check itself could not run: its last line says why
            lines = [next((tcr.message.strip().splitlines()[-1] for tcr in result.test_case_results
                           if not tcr.passed and tcr.message), "the check failed")]
        return [f"❌ {line}" for line in lines]

    def check(self, question, global_env=None):
        """Run the public checks of `question`; one line per failed property."""
        env = global_env if global_env is not None else sys._getframe(1).f_globals
        lines = self._question_lines(question, env)
        return CheckResult(lines, lines[0].startswith("✅"))

    def check_all(self):
        """Run every question's public checks."""
        env = sys._getframe(1).f_globals
        names = sorted(os.path.splitext(os.path.basename(p))[0]
                       for p in glob.glob(os.path.join(self._tests_dir, "*.py")))
        order = [q for q in lab_checks.QUESTIONS if q in names] + [q for q in names if q not in lab_checks.QUESTIONS]
        lines = [line for q in order for line in self._question_lines(q, env)]
        return CheckResult(lines, all(line.startswith("✅") for line in lines))

    def export(self, nb_path=None, export_path=None, pdf=False, filtering=True, pagebreaks=True,
               files=None, display_link=True, force_save=False, run_tests=False, ignore_log=False):
        """Make the submission zip (otter's export), or on Colab say what to upload."""
        if self.interpreter is IPythonInterpreter.COLAB:
            print(COLAB_SUBMIT)
            return None
        path = nb_path or find_notebook(self._expected_notebook)
        if path is None:
            print(NO_NOTEBOOK_SUBMIT)
            return None
        return super().export(path, export_path=export_path, pdf=False, filtering=filtering,
                              pagebreaks=pagebreaks, files=files, display_link=display_link,
                              force_save=force_save, run_tests=False, ignore_log=ignore_log)
