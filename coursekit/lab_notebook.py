"""The `grader` object of the student's notebook: the lab's public checks, one line each.

Shipped to students as `lab_notebook.py`: the release's first cell writes it and
`lab_checks.py` (the lab's public_checks.py) next to the notebook, then makes
`grader = LabNotebook(...)`. That cell installs nothing (issue 20), so this module needs
only the standard library and `lab_checks` (torch); IPython and otter are used where they
are already there. It runs wherever the notebook does (Colab, Jupyter, VS Code, the hub),
under Python 3.9 to 3.13 and torch 2.0 or later: keep it free of 3.10+ syntax
(tests/test_release_setup.py checks).

- `check("q")` runs the public checks of question `q` on the object it names in the
  caller's globals and shows one line per failed property, or one line that all passed;
  `check_all()` does so for every question, in the lab's order. The lines are the ones
  students saw when this class was otter's Notebook.
- The notebook is found even when renamed (`attention_basics (1).ipynb`, a browser
  re-download): VS Code's and Jupyter's own record of the open notebook first, then the
  folder.
- `export` on Colab says in one line what to download and upload; where otter is installed
  (Jupyter with the course's environment) it makes otter's submission zip of the notebook
  it found; elsewhere it names, in one line, the `.ipynb` file to upload.
"""

import glob
import html
import os
import sys

import lab_checks  # the lab's public checks, written next to the notebook by the set-up cell

COLAB_SUBMIT = ("To submit from Colab: save (File → Save), then File → Download → Download .ipynb, "
                "and upload that .ipynb file to the assignment on Gradescope.")
NO_NOTEBOOK_SUBMIT = ("Could not find this notebook's file to export it: save it, then download it "
                      "(File → Download) and upload that .ipynb file to the assignment on Gradescope.")
PASSED = "✅ {question}: every public check passed (the hidden tests decide the grade)"
NOT_DEFINED = "❌ {question}: `{name}` is not defined yet: run the cell that defines it first"


def upload_line(path):
    """The one line that says which notebook file to upload (where no zip is made)."""
    return (f"To submit: save this notebook, then upload its file {path} "
            "to the assignment on Gradescope.")


def _shell():
    """The running IPython shell, or None (plain Python, or IPython not installed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _user_ns():
    shell = _shell()
    return getattr(shell, "user_ns", {}) if shell is not None else {}


def on_colab():
    """Whether this is Colab's kernel (as otter tells: its shell's class is google.colab's)."""
    return "google.colab" in str(_shell())


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


def question_lines(question, global_env):
    """The lines `check(question)` shows, for the names in `global_env`."""
    name = lab_checks.QUESTIONS.get(question)
    if name is None:
        return [f"❌ {question}: no such check (the checks are "
                + ", ".join(lab_checks.QUESTIONS) + ")"]
    if name not in global_env:
        return [NOT_DEFINED.format(question=question, name=name)]
    try:
        lines = lab_checks.failures(question, global_env[name])
    except Exception as exc:  # noqa: BLE001 - the check broke on an odd object: say how, in a line
        text = " ".join(str(exc).split())[:200]
        lines = [f"{question}: the check could not run: {type(exc).__name__}: {text}"]
    lab_checks.LAST[question] = lines
    return [f"❌ {line}" for line in lines] or [PASSED.format(question=question)]


class LabNotebook:
    """The notebook's `grader` (see the module docstring)."""

    def __init__(self, nb_path=None):
        self._expected_notebook = nb_path

    def check(self, question, global_env=None):
        """Run the public checks of `question`; one line per failed property."""
        env = global_env if global_env is not None else sys._getframe(1).f_globals
        lines = question_lines(question, env)
        return CheckResult(lines, lines[0].startswith("✅"))

    def check_all(self, global_env=None):
        """Run every question's public checks."""
        env = global_env if global_env is not None else sys._getframe(1).f_globals
        lines = [line for q in lab_checks.QUESTIONS for line in question_lines(q, env)]
        return CheckResult(lines, all(line.startswith("✅") for line in lines))

    def export(self, nb_path=None, export_path=None, pdf=False, filtering=True, pagebreaks=True,
               files=None, display_link=True, force_save=False, run_tests=False, ignore_log=False):
        """Say what to submit: otter's zip where otter is installed, else the notebook."""
        if on_colab():  # otter refuses to export there, and the notebook lives in Drive
            print(COLAB_SUBMIT)
            return None
        path = nb_path or find_notebook(self._expected_notebook)
        if path is None:
            print(NO_NOTEBOOK_SUBMIT)
            return None
        try:
            import otter  # only here: the first cell installs nothing
        except ImportError:
            print(upload_line(path))
            return None
        return otter.Notebook(path).export(
            path, export_path=export_path, pdf=False, filtering=filtering, pagebreaks=pagebreaks,
            files=files, display_link=display_link, force_save=force_save, run_tests=False,
            ignore_log=ignore_log)
