"""The course's configuration, read once and checked once: `course_config.py` and each lab's
`lab.toml`.

`course_config.py` (the course: its labs, the machines' limits, what students see, the
image) and `source/<lab>/lab.toml` (a lab: title, points, its own settings) are the TA's
files of plain values; `Course` and `Assignment` are what the engine uses: typed, checked
when they are made, and passed on. Nothing in `coursekit` imports `course_config` at import
time: `load()` reads the file beside the repository (or beside the autograder zip's engine,
where the build ships it). A wrong value is a `ConfigError` naming the file and the setting.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

from coursekit import sandbox
from coursekit.image import ImageSpec
from coursekit.lab import Lab, load_lab
from coursekit.submission import Rules

VISIBILITIES = ("visible", "after_due_date", "after_published", "hidden")
DEVICES = ("auto", "cpu", "cuda")
LAB_FILE = "lab.toml"
# The keys of lab.toml that coursekit reads; every other table is the lab's own (its
# make_lab checks them).
_LAB_KEYS = {"title": str, "data_file": str, "preload": list, "points": dict, "manual_points": dict}


class ConfigError(ValueError):
    """A setting is wrong; the message names the file, the setting and what it must be."""


@dataclass(frozen=True)
class Assignment:
    """One lab of the course: its folder, points and settings, and where its outputs go."""

    name: str
    root: Path  # the course's root (course_config.py's folder): the outputs go under it
    folder: Path  # the lab's folder, `<root>/source/<name>`
    title: str
    points: Mapping[str, float]  # autograded question -> points
    manual_points: Mapping[str, float]  # written question -> points
    settings: Mapping[str, Any]  # lab.toml's own tables, and the course's data root
    data_file: str
    preload: tuple[str, ...]
    master_file: Path | None = None  # the master, where it is not `<folder>/<name>.ipynb` (a draft, a test)
    _lab: list[Lab] = field(default_factory=list, repr=False, compare=False)

    @property
    def master(self) -> Path:
        return self.master_file or self.folder / f"{self.name}.ipynb"

    @property
    def release_dir(self) -> Path:
        return self.root / "release" / self.name

    @property
    def solutions_dir(self) -> Path:
        return self.root / "solutions" / self.name

    @property
    def autograder_dir(self) -> Path:
        return self.root / "autograder" / self.name

    @property
    def autograder_zip(self) -> Path:
        return self.autograder_dir / f"{self.name}-autograder.zip"

    def lab(self) -> Lab:
        """The lab (its Python, loaded once)."""
        if not self._lab:
            self._lab.append(load_lab(self.folder, {**self.settings, "preload": list(self.preload)}))
        return self._lab[0]

    @property
    def device_label(self) -> str:
        """What reports call the lab's device call (`Lab.device_label`)."""
        return self.lab().device_label

    def data_path(self) -> Path:
        """The lab's data: the bundle shipped beside the engine (the autograder), else one
        made from the course's data once and cached in `.cache/`."""
        shipped = self.root / self.data_file
        if shipped.is_file():
            return shipped
        key = repr(sorted((k, v) for k, v in self.settings.get("data", {}).items()))
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        cache = self.root / ".cache" / f"data-{self.name}-{digest}.npz"
        if not cache.is_file():
            self.lab().make_data(cache)
        return cache


@dataclass(frozen=True)
class Course:
    """Every course setting the engine uses (see course_config.py for what each means)."""

    root: Path  # the folder of course_config.py: the repository, or the autograder's root
    config_file: Path  # course_config.py itself
    name: str
    assignments: Mapping[str, Assignment]  # in course_config.LABS's order
    nbgrader_course_id: str
    device: str  # where the labs' device calls run: auto | cpu | cuda
    limits: sandbox.Limits
    policy: sandbox.Policy
    visibility: Mapping[str, str]  # "public" / "hidden" -> one of VISIBILITIES
    rules: Rules  # what a submission must be (size, ignored cells); the assignment is added per lab
    image: ImageSpec  # the Gradescope image's Python, pins and torch build
    mnist_root: Path

    @property
    def nbgrader_course_dir(self) -> Path:
        return self.root / "nbgrader_course"

    def assignment(self, name: str | None = None) -> Assignment:
        """The lab `name` (default: the course's first); ConfigError if there is none."""
        if name is None:
            return next(iter(self.assignments.values()))
        if name not in self.assignments:
            raise ConfigError(f"course_config.LABS has no lab {name!r} (it has: {', '.join(self.assignments)})")
        return self.assignments[name]

    def grader(self, assignment: Assignment | None = None, slot: int = 0, require: str | None = None,
               gpu_number: int | None = None, sandboxes: int = 1, data_path: Path | None = None):
        """A grader for `assignment` (default: the first) with the course's limits."""
        from coursekit.engine import Grader

        a = assignment or self.assignment()
        lab = a.lab()
        rules = Rules(max_mb=self.rules.max_mb, assignment=a.name, ignore_tag=self.rules.ignore_tag)
        return Grader(lab, lab.load_data(data_path or a.data_path()), a.points, self.limits,
                      slot=slot, require=require, gpu_number=gpu_number, sandboxes=sandboxes,
                      device=self.device, policy=self.policy, rules=rules)


# --- reading and checking ------------------------------------------------------------

def _number(where: str, name: str, value: Any, least: float = 0, strict: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value > least if strict else value >= least)
    if not ok:
        raise ConfigError(f"{where}: {name} must be a number {'>' if strict else '≥'} {least:g}; it is {value!r}")
    return float(value)


def _points(where: str, name: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k.isidentifier() for k in value):
        raise ConfigError(f"{where}: [{name}] must map question names to points; it is {value!r}")
    return {k: _number(where, f"{name}.{k}", v, strict=False) for k, v in value.items()}


def read_assignment(root: Path, name: str, data_root: Path) -> Assignment:
    """The lab `name` of the course at `root`, from its `lab.toml` (checked)."""
    where = root / "source" / name / LAB_FILE
    if not name.isidentifier():
        raise ConfigError(f"course_config.LABS: {name!r} is not a valid lab name (a Python identifier)")
    try:
        data = tomllib.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: missing (each lab in course_config.LABS has a folder "
                          f"source/{name}/ with its lab.toml)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    for key, kind in _LAB_KEYS.items():
        if key not in data:
            raise ConfigError(f"{where}: `{key}` is missing")
        if not isinstance(data[key], kind):
            raise ConfigError(f"{where}: `{key}` must be a {kind.__name__}; it is {data[key]!r}")
    points = _points(where, "points", data["points"])
    manual = _points(where, "manual_points", data["manual_points"])
    both = sorted(set(points) & set(manual))
    if both:
        raise ConfigError(f"{where}: {', '.join(both)} in both [points] and [manual_points]")
    if not all(isinstance(m, str) for m in data["preload"]):
        raise ConfigError(f"{where}: `preload` must be a list of module names")
    own = {k: v for k, v in data.items() if k not in _LAB_KEYS}
    own["data_root"] = data_root
    own["cache"] = root / ".cache"
    return Assignment(name=name, root=root, folder=where.parent, title=data["title"], points=points, manual_points=manual,
                      settings=own, data_file=data["data_file"], preload=tuple(data["preload"]))


class _Settings:
    """A course_config module whose missing setting is a ConfigError naming it."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._module, name)
        except AttributeError:
            raise ConfigError(f"{self._module.__file__}: {name} is missing") from None


def from_module(module: ModuleType, only: str | None = None) -> Course:
    """The course of an imported course_config module and its labs (only the lab `only`,
    where given: the autograder zip carries one), checked."""
    where = "course_config.py"
    cfg: Any = _Settings(module)
    root = Path(module.__file__).resolve().parent
    vis = cfg.RESULTS_VISIBILITY
    if not (isinstance(vis, dict) and set(vis) == {"public", "hidden"}
            and all(v in VISIBILITIES for v in vis.values())):
        raise ConfigError(f"{where}: RESULTS_VISIBILITY must map 'public' and 'hidden' to one of "
                          f"{', '.join(VISIBILITIES)}; it is {vis!r}")
    if cfg.DEVICE not in DEVICES:
        raise ConfigError(f"{where}: DEVICE must be one of {', '.join(DEVICES)}; it is {cfg.DEVICE!r}")
    numbers = {name: _number(where, name, getattr(cfg, name)) for name in (
        "TIME_LIMIT_S", "CELL_TIME_LIMIT_S", "CALL_TIME_LIMIT_S", "LONG_CALL_TIME_LIMIT_S",
        "MEMORY_LIMIT_MB", "GPU_MEMORY_LIMIT_MB", "GRADER_MEMORY_MB", "MIN_JOB_MEMORY_MB",
        "GPU_SANDBOXES_PER_DEVICE", "MAX_SUBMISSION_MB")}
    labs = cfg.LABS
    if not isinstance(labs, list) or not labs or len(set(labs)) != len(labs):
        raise ConfigError(f"{where}: LABS must be a non-empty list of lab folder names; it is {labs!r}")
    if only is not None:
        if only not in labs:
            raise ConfigError(f"{where}: LABS has no lab {only!r} (it has: {', '.join(labs)})")
        labs = [only]
    data_root = cfg.mnist_root()
    return Course(
        root=root, config_file=Path(module.__file__).resolve(), name=str(cfg.COURSE_NAME),
        assignments={n: read_assignment(root, n, data_root) for n in labs},
        nbgrader_course_id=str(cfg.NBGRADER_COURSE_ID), device=cfg.DEVICE,
        limits=sandbox.Limits(total_s=numbers["TIME_LIMIT_S"], cell_s=numbers["CELL_TIME_LIMIT_S"],
                              call_s=numbers["CALL_TIME_LIMIT_S"], long_call_s=numbers["LONG_CALL_TIME_LIMIT_S"],
                              memory_mb=int(numbers["MEMORY_LIMIT_MB"]),
                              gpu_memory_mb=int(numbers["GPU_MEMORY_LIMIT_MB"])),
        policy=sandbox.Policy(grader_memory_mb=int(numbers["GRADER_MEMORY_MB"]),
                              min_job_memory_mb=int(numbers["MIN_JOB_MEMORY_MB"]),
                              sandboxes_per_gpu=int(numbers["GPU_SANDBOXES_PER_DEVICE"])),
        visibility=dict(vis),
        rules=Rules(max_mb=int(numbers["MAX_SUBMISSION_MB"]), ignore_tag=str(cfg.IGNORE_TAG)),
        image=ImageSpec(python_version=str(cfg.AUTOGRADER_PYTHON_VERSION),
                        requirements=tuple(cfg.AUTOGRADER_REQUIREMENTS), gpu=bool(cfg.AUTOGRADER_GPU),
                        torch_cpu_index=str(cfg.AUTOGRADER_TORCH_CPU_INDEX), device=cfg.DEVICE),
        mnist_root=data_root)


def config_path() -> Path:
    """The course_config.py in use: `$COURSEKIT_CONFIG`, else the one beside `coursekit`'s folder."""
    env = os.environ.get("COURSEKIT_CONFIG")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "course_config.py"


_LOADED: dict[tuple[Path, str | None], Course] = {}


def load(path: Path | None = None, only: str | None = None) -> Course:
    """The course of `path` (default `config_path()`), read and checked once per process;
    with `only`, just that lab of it."""
    path = (path or config_path()).resolve()
    if (path, only) not in _LOADED:
        if not path.is_file():
            raise ConfigError(f"{path}: missing (the course's settings)")
        spec = importlib.util.spec_from_file_location(f"course_config_{len(_LOADED)}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _LOADED[path, only] = from_module(module, only)
    return _LOADED[path, only]
