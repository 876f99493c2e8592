"""Stage the master: read it once, check it, stamp the course settings into a copy.

Points, the assignment's name, requirements and Python version come from
`course_config.py`, never from the notebook; the intro's list of graded work is written
from the questions. The staged folder is what `otter assign` runs on: the stamped
notebook beside the lab's files it imports.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

import course_config as cfg
from coursekit import lab_files
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


def dump_raw(header: str, config: dict) -> str:
    """A raw otter cell's source: `# <header>` and its YAML."""
    return f"# {header}\n" + yaml.safe_dump(config, sort_keys=False).rstrip("\n")


def assignment_config(config: dict) -> dict:
    """The ASSIGNMENT CONFIG with the course's settings: otter assign only lays out files.

    `run_tests: false`: the build grades the solution itself, once in this process and once
    through the zip that ships (otter assign's own run is on a zip before the engine is added).
    """
    return {**config,
            "name": cfg.ASSIGNMENT,
            "python_version": cfg.AUTOGRADER_PYTHON_VERSION,
            "requirements": "requirements.txt",
            "autograder_files": [lab_files.CHECKS_MODULE, lab_files.PUBLIC_CHECKS_MODULE,
                                 lab_files.bundle_file(), lab_files.SETTINGS_FILE],
            "generate": {"show_stdout": False, "show_hidden": False, "pdf": False},
            "plugins": [PLUGIN],
            "run_tests": False}


def stamp(nb: nbformat.NotebookNode, master: Master) -> None:
    """Write the course's settings and each question's points into `nb`'s raw cells."""
    points = {**cfg.AUTOGRADED_POINTS, **cfg.MANUAL_POINTS}
    nb.cells[master.config_cell].source = dump_raw("ASSIGNMENT CONFIG", assignment_config(master.config))
    for q in master.questions:
        q.config["points"] = points[q.name]
        nb.cells[q.start].source = dump_raw("BEGIN QUESTION", q.config)


def prepare(path: Path, stage: Path, bundle: Path) -> Staged:
    """Read and check the master at `path`, stamp it and write it with the lab's files into `stage`."""
    try:
        nb, master = load_master(path)
    except MarkupError as exc:
        raise BuildError(f"{path}: {exc}") from None
    contract.check(master, path)
    stamp(nb, master)
    fill_intro(nb, master.questions)
    stage.mkdir(parents=True, exist_ok=True)
    staged = stage / f"{cfg.ASSIGNMENT}.ipynb"
    nbformat.write(nb, staged)
    shutil.copy(lab_files.CHECKS_SOURCE, stage / lab_files.CHECKS_MODULE)
    shutil.copy(lab_files.PUBLIC_CHECKS_SOURCE, stage / lab_files.PUBLIC_CHECKS_MODULE)
    shutil.copy(bundle, stage / lab_files.bundle_file())
    settings = {**cfg.TRAINING_CHECK, "bundle_file": lab_files.bundle_file()}
    (stage / lab_files.SETTINGS_FILE).write_text(json.dumps(settings, indent=1, sort_keys=True))
    (stage / "requirements.txt").write_text("\n".join(cfg.AUTOGRADER_REQUIREMENTS) + "\n")
    return Staged(path=staged, nb=nb, master=master)


def stage_master(path: Path, stage: Path, bundle: Path) -> Path:
    """`prepare`, returning the staged notebook's path (for callers that need only the file)."""
    return prepare(path, stage, bundle).path
