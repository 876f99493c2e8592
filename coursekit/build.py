"""Build the student release, the solutions and the autograder zip from the master notebook.

The master notebook (otter-assign format) holds the lab; `course_config.py` holds the
settings. The build stamps the settings into a staged copy of the master notebook,
bundles the hidden checks and a small MNIST slice, runs `otter assign` (which grades
the solution against every test and fails the build unless it earns full marks),
then writes normalised, byte-reproducible release and solution notebooks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml

import course_config as cfg
from coursekit import data, nbgrader_build
from coursekit.master_format import SOLUTION_MARKER, raw_config, without_prompt

CHECKS_MODULE = "attention_checks.py"  # name of coursekit/checks.py inside the autograder
PLUGIN = "coursekit.otter_plugin.TrustedGrading"
# The grading engine travels at the zip's root, where Gradescope's Python finds it.
ENGINE_MODULES = ("__init__.py", "calls.py", "checks.py", "engine.py", "student_side.py",
                  "otter_plugin.py", "data.py", "submission.py", *(
                      f"sandbox/{p.name}" for p in sorted((Path(__file__).parent / "sandbox").glob("*.py"))))
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "# SOLUTION", "BEGIN PROMPT", "END PROMPT")
HIDDEN_MARKERS = ("attention_checks", "hidden: true", "BEGIN TEST CONFIG", "run_case")


class BuildError(RuntimeError):
    """The build cannot go on; the message names the file and what is wrong."""


def _dump_raw(header: str, config: dict) -> str:
    return f"# {header}\n" + yaml.safe_dump(config, sort_keys=False).rstrip("\n")


def stage_master(master: Path, stage: Path, bundle: Path) -> Path:
    """Copy the master notebook into `stage` with the course settings stamped in.

    Points come from `course_config.py`; a question without points there (or points
    without a question) is an error, so the two can never drift apart.
    """
    try:
        nb = nbformat.read(master, as_version=4)
    except Exception as exc:
        raise BuildError(f"{master}: not a readable notebook ({exc})") from exc
    points = {**cfg.AUTOGRADED_POINTS, **cfg.MANUAL_POINTS}
    seen: list[str] = []
    found_config = False
    for cell in nb.cells:
        conf = raw_config(cell, "ASSIGNMENT CONFIG")
        if conf is not None:
            found_config = True
            conf.update({
                "name": cfg.ASSIGNMENT,
                "python_version": cfg.AUTOGRADER_PYTHON_VERSION,
                "requirements": "requirements.txt",
                "autograder_files": [CHECKS_MODULE, cfg.BUNDLE_FILE, "attention_config.json"],
                "generate": {"show_stdout": False, "show_hidden": False, "pdf": False},
                "plugins": [PLUGIN],
            })
            cell.source = _dump_raw("ASSIGNMENT CONFIG", conf)
            continue
        conf = raw_config(cell, "BEGIN QUESTION")
        if conf is not None:
            name = conf.get("name")
            if name not in points:
                raise BuildError(f"{master}: question '{name}' has no points in course_config.py")
            manual = bool(conf.get("manual"))
            if manual != (name in cfg.MANUAL_POINTS):
                raise BuildError(f"{master}: question '{name}' is {'manual' if manual else 'autograded'}"
                                 f" in the notebook but not in course_config.py")
            conf["points"] = points[name]
            cell.source = _dump_raw("BEGIN QUESTION", conf)
            seen.append(name)
    if not found_config:
        raise BuildError(f"{master}: no '# ASSIGNMENT CONFIG' raw cell (otter-assign format)")
    missing = sorted(set(points) - set(seen))
    if missing:
        raise BuildError(f"{master}: course_config.py gives points to questions the notebook "
                         f"lacks: {', '.join(missing)}")

    stage.mkdir(parents=True, exist_ok=True)
    staged = stage / f"{cfg.ASSIGNMENT}.ipynb"
    nbformat.write(nb, staged)
    shutil.copy(Path(__file__).with_name("checks.py"), stage / CHECKS_MODULE)
    shutil.copy(bundle, stage / cfg.BUNDLE_FILE)
    settings = {**cfg.TRAINING_CHECK, "bundle_file": cfg.BUNDLE_FILE}
    (stage / "attention_config.json").write_text(json.dumps(settings, indent=1, sort_keys=True))
    (stage / "requirements.txt").write_text("\n".join(cfg.AUTOGRADER_REQUIREMENTS) + "\n")
    return staged


def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Make a generated notebook reproducible: no outputs, counts or random cell ids."""
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    return nb


def clean_solution_source(source: str) -> str:
    """Drop otter's solution and prompt markers (and the prompt stub) from a solution cell."""
    return "\n".join(ln for ln in without_prompt(source) if not SOLUTION_MARKER.search(ln.rstrip()))


def make_solutions(solution_nb: nbformat.NotebookNode,
                   release_nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solutions notebook: clean solution code, and only the public tests (as released)."""
    for cell in solution_nb.cells:
        if cell.cell_type == "code":
            cell.source = clean_solution_source(cell.source)
    solution_nb.metadata["otter"] = release_nb.metadata["otter"]
    return solution_nb


def check_release(path: Path, hidden_only: bool = False) -> None:
    """Fail the build if a notebook handed out carries solution markers or hidden-test text."""
    text = path.read_text()
    for marker in HIDDEN_MARKERS + (() if hidden_only else SOLUTION_MARKERS):
        if marker in text:
            raise BuildError(f"{path}: the student release contains '{marker}'")


def add_engine(zip_path: Path) -> None:
    """Put the grading engine (and course_config.py) at the root of the autograder zip."""
    import zipfile

    package = Path(__file__).parent
    with zipfile.ZipFile(zip_path, "a", zipfile.ZIP_DEFLATED) as zf:
        for name in ENGINE_MODULES:
            zf.write(package / name, f"coursekit/{name}")
        zf.write(cfg.REPO_ROOT / "course_config.py", "course_config.py")


def _run_otter_assign(staged: Path, dist: Path, run_tests: bool) -> None:
    cmd = [sys.executable, "-m", "otter", "assign", str(staged), str(dist)]
    if not run_tests:
        cmd.append("--no-run-tests")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=staged.parent)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BuildError(f"otter assign failed on {cfg.SOURCE_NOTEBOOK}:\n{tail}")


def build(*, run_tests: bool = True, out_root: Path | None = None, quiet: bool = False) -> dict[str, Path]:
    """Build release, solutions and autograder zip; return their paths.

    `out_root` redirects the outputs (tests build into a temporary folder); the
    default writes the committed `release/` and `solutions/` and the ignored zip.
    """
    root = out_root or cfg.REPO_ROOT
    rel = lambda p: root / p.relative_to(cfg.REPO_ROOT)  # noqa: E731
    release_nb = rel(cfg.RELEASE_DIR) / f"{cfg.ASSIGNMENT}.ipynb"
    solution_nb = rel(cfg.SOLUTIONS_DIR) / f"{cfg.ASSIGNMENT}.ipynb"
    zip_path = rel(cfg.AUTOGRADER_ZIP)
    course_dir = rel(cfg.NBGRADER_COURSE_DIR)
    say = (lambda *_: None) if quiet else (lambda msg: print(msg, flush=True))

    with tempfile.TemporaryDirectory(prefix="coursekit-build-") as tmp:
        tmp_path = Path(tmp)
        say(f"data: bundling the MNIST test-split slice from {cfg.mnist_root()}")
        bundle = data.make_bundle(tmp_path / cfg.BUNDLE_FILE)
        staged = stage_master(cfg.SOURCE_NOTEBOOK, tmp_path / "stage", bundle)
        dist = tmp_path / "dist"
        say("otter assign: generating the release and autograder"
            + (", grading the solution against every test" if run_tests else ""))
        _run_otter_assign(staged, dist, run_tests)

        student = normalise(nbformat.read(dist / "student" / staged.name, as_version=4))
        solution = make_solutions(
            normalise(nbformat.read(dist / "autograder" / staged.name, as_version=4)), student)
        for nb, dst in ((student, release_nb), (solution, solution_nb)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, dst)
        check_release(release_nb)
        check_release(solution_nb, hidden_only=True)

        zips = sorted((dist / "autograder").glob("*autograder*.zip"))
        if len(zips) != 1:
            raise BuildError(f"otter assign made {len(zips)} autograder zips in {dist / 'autograder'}")
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(zips[0], zip_path)
        add_engine(zip_path)
        nbgrader_source = nbgrader_build.write_course(staged, course_dir)
    say(f"wrote {release_nb}\nwrote {solution_nb}\nwrote {zip_path}\nwrote {nbgrader_source}")
    return {"release": release_nb, "solutions": solution_nb, "zip": zip_path,
            "nbgrader_course": course_dir, "nbgrader_source": nbgrader_source}
