"""Build the student release, the solutions and the autograder zip from the master notebook.

The master notebook (otter-assign format) holds the lab; `course_config.py` holds the
settings. The build stamps the settings into a staged copy of the master notebook,
bundles the hidden checks and a small MNIST slice, runs `otter assign` (which grades
the solution against every test and fails the build unless it earns full marks),
then writes normalised, byte-reproducible release and solution notebooks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml

import course_config as cfg
from coursekit import data, nbgrader_build, questions, release_setup
from coursekit.master_format import SOLUTION_MARKER, raw_config, without_prompt

CHECKS_MODULE = "attention_checks.py"  # name of coursekit/checks.py inside the autograder
PUBLIC_CHECKS_MODULE = "lab_checks.py"  # coursekit/public_checks.py, as students get it
PLUGIN = "coursekit.otter_plugin.TrustedGrading"
# The grading engine travels at the zip's root, where Gradescope's Python finds it.
ENGINE_MODULES = ("__init__.py", "calls.py", "checks.py", "engine.py", "report.py", "student_side.py",
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
    without a question) is an error, so the two can never drift apart. A question block
    without its end marker is an error too, and the intro's list of what is graded is
    written from the questions themselves (`coursekit.questions`).
    """
    try:
        nb = nbformat.read(master, as_version=4)
    except Exception as exc:
        raise BuildError(f"{master}: not a readable notebook ({exc})") from exc
    from coursekit import checks

    try:
        found = questions.read_questions(nb)
        questions.check_hidden_cases(nb, found, {cid: c.question for cid, c in checks.CASES.items()})
    except questions.MarkupError as exc:
        raise BuildError(f"{master}: {exc}") from None
    both = sorted(set(cfg.AUTOGRADED_POINTS) & set(cfg.MANUAL_POINTS))
    if both:
        raise BuildError(f"course_config.py: {', '.join(both)} in both AUTOGRADED_POINTS and MANUAL_POINTS")
    questions.fill_intro(nb, found)
    try:
        cfg.results_visibility()  # checked here, not when the first student's results are written
    except ValueError as exc:
        raise BuildError(f"course_config.py: {exc}") from None
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
                "autograder_files": [CHECKS_MODULE, PUBLIC_CHECKS_MODULE, cfg.BUNDLE_FILE, "attention_config.json"],
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
            if name in cfg.MANUAL_POINTS and not manual:
                raise BuildError(f"{master}: question '{name}' has points in MANUAL_POINTS (a written "
                                 "question) but its BEGIN QUESTION cell lacks `manual: true`")
            if name in cfg.AUTOGRADED_POINTS and manual:
                raise BuildError(f"{master}: question '{name}' has points in AUTOGRADED_POINTS (an "
                                 "autograded question) but its BEGIN QUESTION cell says `manual: true` "
                                 "(written questions take their points from MANUAL_POINTS)")
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
    shutil.copy(Path(__file__).with_name("public_checks.py"), stage / PUBLIC_CHECKS_MODULE)
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


# Only otter assign's own run of the solution needs these; the graded zip drops them.
ASSIGN_ONLY_FILES = (CHECKS_MODULE, PUBLIC_CHECKS_MODULE)


def finish_zip(zip_path: Path, image_cuda: bool | None = None) -> None:
    """Make otter assign's zip the one Gradescope runs: nothing of the grader where otter
    copies files next to the submission, and the engine at the zip's root.

    otter's runner copies the zip's `files/` folder and `tests/` into the submission's
    folder before any plugin runs. So the data and settings move to `grader_files/` (the
    plugin reads them there), the checks otter assign needed are dropped, and each test
    file becomes a placeholder: no hidden test, check, seed or datum is ever copied where
    an upload's files lie.

    otter's image (`setup.sh`: Miniforge, conda, torch's CUDA stack, Chromium) gives way
    to ours (`coursekit.image`: a venv with the exact pins, CPU-only torch unless the
    course grades on a GPU); `image_cuda` overrides the course's choice.
    """
    import zipfile

    from coursekit import image
    from coursekit.otter_plugin import GRADER_FILES, placeholder_test

    ours = image.image_files(cuda=image_cuda, pdf=False)  # stage_master turns otter's PDFs off
    rewritten = zip_path.with_suffix(".tmp")
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            name = info.filename
            if name in ours or name in image.REPLACED:
                continue
            if name.startswith("files/"):
                if name[len("files/"):] in ASSIGN_ONLY_FILES:
                    continue
                info.filename = GRADER_FILES + name[len("files"):]
                dst.writestr(info, src.read(name))
            elif name.startswith("tests/") and name.endswith(".py"):
                question = name[len("tests/"):-len(".py")]
                dst.writestr(info, placeholder_test(question, cfg.AUTOGRADED_POINTS.get(question, 0)))
            else:
                dst.writestr(info, src.read(name))
        package = Path(__file__).parent
        for name in ENGINE_MODULES:
            dst.write(package / name, f"coursekit/{name}")
        # The settings this build used (the zip grades by them, whatever is installed
        # where it runs: see coursekit.otter_plugin.TrustedGrading).
        dst.write(Path(cfg.__file__).resolve(), "course_config.py")
        for name, text in ours.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if not name.endswith(".txt") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, text)
    rewritten.replace(zip_path)


def solution_definitions(staged: Path) -> tuple[dict, list[str]]:
    """Run the solution's gradable code (trusted: the master's own) in this process.

    The code cells the grader runs (not tagged otter_ignore, not test cells), with otter's
    prompts and markers dropped; returns their globals and one line per cell that raised.
    """
    from coursekit.notebook_defs import run_cells

    nb = nbformat.read(staged, as_version=4)
    tests = {i for q in questions.read_questions(nb) for i in q.test_cells}
    cells = [(f"{i}", clean_solution_source(cell.source)) for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and i not in tests
             and cfg.IGNORE_TAG not in cell.metadata.get("tags", [])]
    namespace, problems = run_cells(cells, "__solution__", quiet=True)
    return namespace, [f"  {line}" for line in problems]


def _exception_lines(log: str) -> list[str]:
    """The final `Type: message` line of each traceback in `log`, once each."""
    found: list[str] = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            last = next((ln for ln in lines[i + 1:] if ln and not ln.startswith(" ")), "")
            if last and last not in found:
                found.append(last.strip())
    return found


def check_solution(staged: Path) -> None:
    """Grade the solution against every hidden case in this process, before otter assign:
    one line per failed case, with the exception the solution raised (no traceback)."""
    import contextlib
    import io

    from coursekit import checks

    settings = json.loads((staged.parent / "attention_config.json").read_text())
    bundle = checks.load_bundle(staged.parent / settings["bundle_file"])
    import torch

    namespace, failed = solution_definitions(staged)
    reserved = {"case_id", "training", "bundle"}
    defs = {k: v for k, v in namespace.items() if not k.startswith("__") and k not in reserved}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the grader: the training case takes ~2 s, not 30 on a busy box
    try:
        for case_id, case in checks.CASES.items():
            log = io.StringIO()
            try:
                with contextlib.redirect_stderr(log), contextlib.redirect_stdout(io.StringIO()):
                    checks.run_case(case_id, settings, bundle, **defs)
            except checks.CheckFailed as exc:
                message = str(exc)
            except Exception as exc:  # noqa: BLE001 - the check itself broke: say how
                message = f"the check raised {type(exc).__name__}: {exc}"
            else:
                continue
            raised = _exception_lines(log.getvalue())
            failed.append(f"  {case_id} ({case.question}): {message}"
                          + (f" [{'; '.join(raised[:2])}]" if raised else ""))
    finally:
        torch.set_num_threads(threads)
    if failed:
        raise BuildError(f"{cfg.SOURCE_NOTEBOOK}: the solution fails its own hidden tests "
                         "(fix the solution or the check):\n" + "\n".join(failed))


_OTTER_NOISE = ("[IPKernelApp]", "During handling of the above exception",
                "The above exception was the direct cause")


def otter_failure_lines(output: str, limit: int = 40) -> list[str]:
    """What matters in otter's output when it fails: no traceback frames, no kernel
    warnings, no passing tests; the exception's own text and otter's summary stay."""
    kept, in_traceback = [], False
    for line in output.splitlines():
        if line.startswith("Traceback (most recent call last):"):
            in_traceback = True
            continue
        if in_traceback:
            if not line.strip() or line.startswith(" "):
                continue
            in_traceback = False
        if (not line.strip() or line.startswith(_OTTER_NOISE) or "All test cases passed" in line
                or line.strip() == "✅ passed"):
            continue
        kept.append(line.rstrip())
    return kept[:limit] + ([f"... ({len(kept) - limit} more lines)"] if len(kept) > limit else [])


def _run_otter_assign(staged: Path, dist: Path, run_tests: bool) -> None:
    cmd = [sys.executable, "-m", "otter", "assign", str(staged), str(dist)]
    if run_tests:
        check_solution(staged)  # first: one line per failed case, which otter cannot give
    else:
        cmd.append("--no-run-tests")
    # otter assign grades the solution with the plugin: the coursekit and course_config.py
    # of this build, not whichever are installed.
    from coursekit import ENGINE_ROOT

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ENGINE_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=staged.parent, env=env)
    if proc.returncode != 0:
        lines = otter_failure_lines(proc.stdout + "\n" + proc.stderr)
        raise BuildError(f"otter assign failed on {cfg.SOURCE_NOTEBOOK}:\n" + "\n".join(lines))


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
        if out_root is None and questions.update_readme(cfg.REPO_ROOT / "README.md", cfg.SOURCE_NOTEBOOK):
            say("README.md: rewrote the list of tasks and written questions from the master notebook")
        dist = tmp_path / "dist"
        say("otter assign: generating the release and autograder"
            + (", grading the solution against every test" if run_tests else ""))
        _run_otter_assign(staged, dist, run_tests)

        student = nbformat.read(dist / "student" / staged.name, as_version=4)
        # otter's public tests are not shipped: the first cell's lab_checks.py runs the same
        # checks without otter (issue 20), and Colab refuses tests kept in notebook metadata.
        student.metadata["otter"].pop("tests", None)
        student.metadata["otter"].pop("OK_FORMAT", None)  # otter requires it only with tests
        student = normalise(release_setup.with_setup_cell(student))
        solution = make_solutions(normalise(release_setup.with_setup_cell(
            nbformat.read(dist / "autograder" / staged.name, as_version=4))), student)
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
        finish_zip(zip_path)
        nbgrader_source = nbgrader_build.write_course(staged, course_dir)
    say(f"wrote {release_nb}\nwrote {solution_nb}\nwrote {zip_path}\nwrote {nbgrader_source}")
    return {"release": release_nb, "solutions": solution_nb, "zip": zip_path,
            "nbgrader_course": course_dir, "nbgrader_source": nbgrader_source}
