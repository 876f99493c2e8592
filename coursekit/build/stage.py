"""Stage the master: read it once, check it, stamp the course settings into a copy.

Points come from the lab's `lab.toml`, the assignment's name, requirements and Python
version from the course (`coursekit.course`), never from the notebook; the intro's list of
graded work is written from the questions. The staged folder is what `otter assign` runs
on: the stamped notebook beside the lab's data.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml

from coursekit.build import contract
from coursekit.build.errors import BuildError
from coursekit.build.graded_work import fill_intro
from coursekit.build.master import Master, MarkupError, load_master

PLUGIN = "coursekit.otter_plugin.TrustedGrading"


@dataclass
class Staged:
    """The staged master: its file, its stamped notebook and the model read from it (the
    cell indices of `master` hold for `nb`: stamping rewrites sources only)."""

    path: Path
    nb: nbformat.NotebookNode
    master: Master
    bundle: Path  # the lab's data, beside the notebook


def dump_raw(header: str, config: dict) -> str:
    """A raw otter cell's source: `# <header>` and its YAML."""
    return f"# {header}\n" + yaml.safe_dump(config, sort_keys=False).rstrip("\n")


def assignment_config(config: dict, a: Any, course: Any) -> dict:
    """The ASSIGNMENT CONFIG with the course's settings: otter assign only lays out files.

    `run_tests: false`: the build grades the solution itself, once in this process and once
    through the zip that ships (otter assign's own run is on a zip before the engine is added).
    """
    return {**config,
            "name": a.name,
            "python_version": course.image.python_version,
            "requirements": "requirements.txt",
            "autograder_files": [a.data_file],
            "generate": {"show_stdout": False, "show_hidden": False, "pdf": False},
            "plugins": [PLUGIN],
            "run_tests": False}


def stamp(nb: nbformat.NotebookNode, master: Master, a: Any, course: Any) -> None:
    """Write the course's settings and each question's points into `nb`'s raw cells."""
    # 2, not 2.0: otter writes the number as given into the notebooks students see
    points = {q: int(v) if float(v).is_integer() else v for q, v in {**a.points, **a.manual_points}.items()}
    nb.cells[master.config_cell].source = dump_raw("ASSIGNMENT CONFIG", assignment_config(master.config, a, course))
    for q in master.questions:
        q.config["points"] = points[q.name]
        nb.cells[q.start].source = dump_raw("BEGIN QUESTION", q.config)


def prepare(path: Path, stage: Path, bundle: Path, a: Any, course: Any) -> Staged:
    """Read and check the master at `path` (of the assignment `a` of `course`), stamp it and
    write it with the lab's data into `stage`."""
    try:
        nb, master = load_master(path)
    except MarkupError as exc:
        raise BuildError(f"{path}: {exc}") from None
    contract.check(master, path, a)
    stamp(nb, master, a, course)
    fill_intro(nb, master.questions)
    stage.mkdir(parents=True, exist_ok=True)
    staged = stage / f"{a.name}.ipynb"
    nbformat.write(nb, staged)
    shutil.copy(bundle, stage / a.data_file)
    (stage / "requirements.txt").write_text("\n".join(course.image.requirements) + "\n")
    return Staged(path=staged, nb=nb, master=master, bundle=stage / a.data_file)


def stage_master(path: Path, stage: Path, bundle: Path, a: Any = None, course: Any = None) -> Path:
    """`prepare`, returning the staged notebook's path (for callers that need only the file);
    by default for the course's first lab."""
    from coursekit import course as courses

    course = course or courses.load()
    return prepare(path, stage, bundle, a or course.assignment(), course).path
