"""The course's configuration, read once from `course_config.py` and checked once.

`course_config.py` is the TA's file of plain values; `Course` is what the engine uses: typed,
validated when it is made, and passed on (nothing in `coursekit` imports `course_config` at
import time). `load()` reads the file beside the repository (or beside the autograder zip's
engine, where the build ships it); `Course.lab()` loads the assignment's lab folder and
`Course.grader()` makes a grader for it with the course's limits.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

from coursekit import sandbox
from coursekit.image import ImageSpec
from coursekit.lab import Lab, load_lab
from coursekit.submission import Rules

VISIBILITIES = ("visible", "after_due_date", "after_published", "hidden")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A setting of course_config.py is wrong; the message names it and what it must be."""


@dataclass(frozen=True)
class Course:
    """Every course setting the engine uses (see course_config.py for what each means)."""

    root: Path  # the folder of course_config.py: the repository, or the autograder's root
    assignment: str
    title: str
    points: Mapping[str, float]  # autograded question -> points
    manual_points: Mapping[str, float]
    lab_settings: Mapping[str, Any]  # what the lab's make_lab gets
    device: str  # where the lab's device calls run: auto | cpu | cuda
    limits: sandbox.Limits
    policy: sandbox.Policy
    visibility: Mapping[str, str]  # "public" / "hidden" -> one of VISIBILITIES
    data_file: str  # the lab's data bundle's name inside the autograder
    rules: Rules  # what a submission must be (size, assignment, ignored cells)
    image: ImageSpec  # the Gradescope image's Python, pins and torch build
    module: Any = field(default=None, repr=False, compare=False)  # course_config itself

    @property
    def lab_folder(self) -> Path:
        return self.root / "source" / self.assignment

    @cached_property
    def the_lab(self) -> Lab:
        return load_lab(self.lab_folder, self.lab_settings)

    def lab(self) -> Lab:
        """The assignment's lab (loaded once)."""
        return self.the_lab

    def data_path(self) -> Path:
        """The lab's data: the bundle shipped beside the engine (the autograder), else one
        made from the course's data once and cached in `.cache/`."""
        shipped = self.root / self.data_file
        if shipped.is_file():
            return shipped
        lab = self.lab()
        key = "-".join(f"{k}={v}" for k, v in sorted(self.lab_settings.get("data", {}).items())
                       if k not in ("mnist_root", "cache"))
        cache = self.root / ".cache" / f"data-{lab.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
        if not cache.is_file():
            lab.make_data(cache)
        return cache

    def grader(self, slot: int = 0, require: str | None = None, gpu_number: int | None = None,
               sandboxes: int = 1, data_path: Path | None = None):
        """A grader for the assignment with the course's limits."""
        from coursekit.engine import Grader

        lab = self.lab()
        return Grader(lab, lab.load_data(data_path or self.data_path()), self.points, self.limits,
                      slot=slot, require=require, gpu_number=gpu_number, sandboxes=sandboxes,
                      device=self.device, policy=self.policy, rules=self.rules)


def _need(cond: bool, name: str, what: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"course_config.{name} must be {what}; it is {value!r}")


def _points(name: str, value: Any) -> dict[str, float]:
    _need(isinstance(value, dict) and all(isinstance(k, str) and k.isidentifier() for k in value),
          name, "a dict of question names to points", value)
    for k, v in value.items():
        _need(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, f"{name}[{k!r}]",
              "a number ≥ 0", v)
    return {k: float(v) for k, v in value.items()}


def from_module(cfg: ModuleType) -> Course:
    """The course of an imported course_config module, checked (ConfigError if wrong)."""
    vis = getattr(cfg, "RESULTS_VISIBILITY", None)
    _need(isinstance(vis, dict) and set(vis) == {"public", "hidden"}
          and all(v in VISIBILITIES for v in vis.values()), "RESULTS_VISIBILITY",
          f"a dict mapping 'public' and 'hidden' to one of {', '.join(VISIBILITIES)}", vis)
    training = dict(cfg.TRAINING_CHECK)
    device = training.get("device", "auto")
    _need(device in DEVICES, "TRAINING_CHECK['device']", f"one of {', '.join(DEVICES)}", device)
    points = _points("AUTOGRADED_POINTS", cfg.AUTOGRADED_POINTS)
    manual = _points("MANUAL_POINTS", cfg.MANUAL_POINTS)
    for name in ("TIME_LIMIT_S", "CELL_TIME_LIMIT_S", "CALL_TIME_LIMIT_S", "TRAINING_TIME_LIMIT_S",
                 "MEMORY_LIMIT_MB", "GPU_MEMORY_LIMIT_MB", "GRADER_MEMORY_MB", "MIN_JOB_MEMORY_MB",
                 "GPU_SANDBOXES_PER_DEVICE", "MAX_SUBMISSION_MB"):
        value = getattr(cfg, name)
        _need(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0, name,
              "a number > 0", value)
    root = Path(cfg.__file__).resolve().parent
    data = {"mnist_root": cfg.mnist_root(), "cache": root / ".cache" / "mnist",
            "seed": cfg.BUNDLE_SEED, "database": cfg.NUM_DATABASE_IMAGES,
            "train": cfg.BUNDLE_TRAIN_QUERIES, "heldout": cfg.BUNDLE_HELDOUT_QUERIES}
    return Course(
        root=root, assignment=cfg.ASSIGNMENT, title=cfg.ASSIGNMENT_TITLE, points=points,
        manual_points=manual,
        lab_settings={"training": training, "data": data, "preload": list(cfg.PRELOAD_MODULES)},
        device=device,
        limits=sandbox.Limits(total_s=cfg.TIME_LIMIT_S, cell_s=cfg.CELL_TIME_LIMIT_S,
                              call_s=cfg.CALL_TIME_LIMIT_S, training_s=cfg.TRAINING_TIME_LIMIT_S,
                              memory_mb=cfg.MEMORY_LIMIT_MB, gpu_memory_mb=cfg.GPU_MEMORY_LIMIT_MB),
        policy=sandbox.Policy(grader_memory_mb=cfg.GRADER_MEMORY_MB, min_job_memory_mb=cfg.MIN_JOB_MEMORY_MB,
                              sandboxes_per_gpu=cfg.GPU_SANDBOXES_PER_DEVICE),
        visibility=dict(vis), data_file=cfg.BUNDLE_FILE,
        image=ImageSpec(python_version=str(cfg.AUTOGRADER_PYTHON_VERSION),
                        requirements=tuple(cfg.AUTOGRADER_REQUIREMENTS), gpu=bool(cfg.AUTOGRADER_GPU),
                        torch_cpu_index=str(cfg.AUTOGRADER_TORCH_CPU_INDEX), device=device),
        rules=Rules(max_mb=int(cfg.MAX_SUBMISSION_MB), assignment=cfg.ASSIGNMENT, ignore_tag=cfg.IGNORE_TAG),
        module=cfg)


_LOADED: dict[str, Course] = {}


def load() -> Course:
    """The course of `course_config.py` (imported on first use, checked once per process)."""
    if "course" not in _LOADED:
        _LOADED["course"] = from_module(importlib.import_module("course_config"))
    return _LOADED["course"]
