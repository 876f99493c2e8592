"""The one interface between the engine and a lab: what `coursekit` calls, and nothing more.

A lab is a folder, `source/<name>/`: its master notebook `<name>.ipynb` and a Python package
(`__init__.py`) whose `lab.py` defines `make_lab(settings) -> Lab`. The engine never imports a
lab by name: a front door loads one with `load_lab(folder, settings)` and passes it on.

What a lab gives the engine:

- `calls`: each call of student code on hidden inputs (`Call`), and `job_module`, the lab's
  module that the sandboxed job imports to make them (`evaluate(call, defs, inputs, runtime)`,
  which returns plain arrays or raises `coursekit.calling.StudentError`). That module is the
  only part of the lab that runs next to student code: it holds no reference and no verdict.
- `definitions`: the notebook names the job collects after running the cells.
- `inputs(data, settings)`: the hidden inputs (tensors by name), made on the trusted side.
- `cases`: each hidden test case (`Case`): its question, the calls it needs, its verdict
  (raises `CheckFailed` with one line for the student).
- `error_kinds`: the lab's own fixed labels a job may report for a failed call (beside
  `calling.ERROR_KINDS`); any other text the job sends becomes "failed".
- `load_data` / `make_data`: the data bundle the checks use (made once from the course's
  data, shipped in the autograder).
- `public_checks`: the students' public checks (torch only: it is shipped beside the release
  as `lab_checks.py`), with `QUESTIONS` (question -> the notebook name it checks), `report`
  and `require`.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

Arrays = dict[str, Any]  # name -> numpy array
# Where a device call ran: its result's 0-d int8 array "device" holds one of these codes.
DEVICES = {0: "cpu", 1: "cuda", 2: "cpu (CUDA failed in the sandbox)", 3: "cpu (the model failed on CUDA)"}
Outputs = dict[str, Any]  # call id -> Arrays, or the StudentError its call raised


class CheckFailed(AssertionError):
    """A property of the student's code does not hold; the message is one line."""


@dataclass(frozen=True)
class Call:
    """One call of student code on hidden inputs: `target(*args, **kwargs)`.

    `target` names the student's function in messages (and groups the calls: a function
    that hangs on one input is not retried on the others); `long` calls (training) get the
    sandbox's longer time limit; `device` calls run on the accelerator where there is one.
    """

    id: str
    target: str
    args: tuple[str, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    long: bool = False
    device: bool = False


@dataclass(frozen=True)
class Case:
    """One hidden test case: the question it scores, the calls it needs, its verdict."""

    question: str
    calls: tuple[str, ...]
    verdict: Callable[[Outputs, Mapping[str, Any]], None]


@dataclass(frozen=True)
class Lab:
    """Everything the engine knows of one lab (see the module's docstring)."""

    name: str
    folder: Path
    settings: Mapping[str, Any]
    calls: tuple[Call, ...]
    cases: Mapping[str, Case]
    definitions: tuple[str, ...]
    job_module: str
    inputs: Callable[[Arrays | None, Mapping[str, Any]], dict[str, Any]]
    load_data: Callable[[Path], Arrays]
    make_data: Callable[[Path], None]
    public_checks: Path
    error_kinds: tuple[re.Pattern[str], ...] = ()
    preload: tuple[str, ...] = ()

    @property
    def calls_by_id(self) -> dict[str, Call]:
        return {c.id: c for c in self.calls}

    @property
    def package(self) -> str:
        """The name the lab's package is imported under (its folder's name)."""
        return self.folder.name

    def case_points(self, points: Mapping[str, float]) -> dict[str, float]:
        """Each question's `points` split evenly over its hidden cases (as otter splits them)."""
        counts: dict[str, int] = {}
        for case in self.cases.values():
            counts[case.question] = counts.get(case.question, 0) + 1
        return {cid: float(points[c.question]) / counts[c.question] for cid, c in self.cases.items()}

    def job(self) -> Any:
        """The job module (imported here too: the build grades the solution in-process)."""
        return importlib.import_module(self.job_module)

    def run_case(self, case_id: str, defs: Mapping[str, Any], inputs: Mapping[str, Any]) -> None:
        """Evaluate and judge one case in this process, for trusted code only (the master's
        solution, at build time): raises CheckFailed, or whatever the check raised."""
        from coursekit.calling import StudentError

        job, case = self.job(), self.cases[case_id]
        by_id = self.calls_by_id
        outputs: Outputs = {}
        for call_id in case.calls:
            try:
                outputs[call_id] = job.evaluate(by_id[call_id], dict(defs), dict(inputs), {"device": "cpu"})
            except StudentError as err:
                outputs[call_id] = err
        case.verdict(outputs, inputs)

    def public_questions(self) -> dict[str, str]:
        """The public checks' QUESTIONS: question -> the notebook name it checks."""
        spec = importlib.util.spec_from_file_location(f"_{self.name}_public_checks", self.public_checks)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        questions = getattr(module, "QUESTIONS", None)
        if not isinstance(questions, dict):
            raise LabError(f"{self.public_checks}: defines no QUESTIONS dict")
        return dict(questions)

    @property
    def device_label(self) -> str:
        """What reports call the lab's device call ("training check"): its id and "check"."""
        return next((f"{c.id} check" for c in self.calls if c.device), "device check")

    def case_table(self, points: Mapping[str, float]) -> dict[str, tuple[str, float]]:
        """case id -> (question, points): what a report of this lab holds (coursekit.report),
        the questions in the order of `points` (lab.toml's, the grade book's columns), each
        question's cases in the lab's order."""
        split = self.case_points(points)
        rank = {q: i for i, q in enumerate(points)}
        ids = sorted(self.cases, key=lambda cid: rank[self.cases[cid].question])  # stable
        return {cid: (self.cases[cid].question, split[cid]) for cid in ids}


class LabError(RuntimeError):
    """A lab folder cannot be loaded; the message names the file and what is wrong."""


class DataError(RuntimeError):
    """A lab's data (e.g. the course's copy of MNIST) is missing or broken; the message says
    which file and how to fix it. A lab's `make_data` raises it."""


def import_package(folder: Path) -> Any:
    """Import the lab folder `folder` as the package named after it (once per process).

    By file location, not through `sys.path`: nothing else of the folder's parent becomes
    importable, and the sandbox's zygote imports the same package the trusted side did.
    """
    folder = Path(folder)
    name = folder.name
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").parent.resolve() != folder.resolve():
            raise LabError(f"{folder}: another module named {name!r} is already imported")
        return loaded
    init = folder / "__init__.py"
    if not init.is_file():
        raise LabError(f"{init}: missing (a lab folder is a Python package: add an empty __init__.py)")
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_lab(folder: Path, settings: Mapping[str, Any]) -> Lab:
    """The lab in `folder`, made by its `lab.make_lab(settings)`."""
    package = import_package(folder)
    try:
        module = importlib.import_module(f"{package.__name__}.lab")
    except ModuleNotFoundError as exc:
        if exc.name == f"{package.__name__}.lab":
            raise LabError(f"{Path(folder) / 'lab.py'}: missing (it defines make_lab(settings))") from None
        raise
    make = getattr(module, "make_lab", None)
    if not callable(make):
        raise LabError(f"{Path(folder) / 'lab.py'}: defines no make_lab(settings)")
    lab = make(settings)
    if not isinstance(lab, Lab):
        raise LabError(f"{Path(folder) / 'lab.py'}: make_lab returned {type(lab).__name__}, not a coursekit.lab.Lab")
    _check(lab)
    return lab


def _check(lab: Lab) -> None:
    """The lab's parts agree: every case names calls the lab makes, every call id is unique."""
    where = lab.folder / "lab.py"
    ids = [c.id for c in lab.calls]
    if len(ids) != len(set(ids)):
        raise LabError(f"{where}: two calls share an id")
    for cid, case in lab.cases.items():
        unknown = [c for c in case.calls if c not in ids]
        if unknown:
            raise LabError(f"{where}: case {cid!r} needs calls the lab does not make: {', '.join(unknown)}")
