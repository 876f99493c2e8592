"""`build()`: the master notebook in, every output out, all or nothing.

1. bundle the lab's data slice; read, check and stamp the master once (`stage`);
2. grade the solution in this process (`solution_check`: one line per failed case);
3. `otter assign` lays out the release and the zip, grading nothing (`otter_zip`);
4. write the release and solutions (`notebooks`), the finished zip (`otter_zip`) and the
   nbgrader course (`nbgrader_course`) into a staging folder (`outputs`);
5. grade the built solutions and release through the built zip (`zip_check`);
6. only then stage README.md's list of graded work and move every output into place.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat

from coursekit import release_setup
from coursekit.build import nbgrader_course, notebooks, otter_zip, solution_check, stage, zip_check
from coursekit.build.graded_work import readme_with_questions
from coursekit.build.outputs import StagedOutputs
from coursekit import course as courses
from coursekit.course import Course


def _write_readme(root: Path, outputs: StagedOutputs, staged: stage.Staged, lab: str, first: bool) -> bool:
    """Stage README.md with the lab's list of graded work rewritten (its own block, or the
    unnamed one for the course's first lab); False if it is unchanged (or absent)."""
    readme = root / "README.md"
    if not readme.is_file():
        return False
    old = readme.read_text()
    new = readme_with_questions(old, staged.master.questions, lab, first)
    if new != old:
        outputs.path(readme).write_text(new)
    return new != old


def build(*, run_tests: bool = True, out_root: Path | None = None, quiet: bool = False,
          course: Course | None = None, assignment: str | None = None) -> dict[str, Path]:
    """Build the release, solutions, autograder zip and nbgrader course of `assignment`
    (default: the course's first lab); return their paths.

    `out_root` redirects the outputs (tests build into a temporary folder); the default
    writes the committed `release/`, `solutions/`, `nbgrader_course/` and README.md and the
    ignored zip. `run_tests=False` skips both gradings of the solution (faster, unchecked).
    Raises BuildError, and changes no output, when any part fails.
    """
    course = course or courses.load()
    a = course.assignment(assignment)
    root = out_root or course.root
    rel = lambda p: root / p.relative_to(course.root)  # noqa: E731
    release_nb = rel(a.release_dir) / f"{a.name}.ipynb"
    solution_nb = rel(a.solutions_dir) / f"{a.name}.ipynb"
    zip_path = rel(a.autograder_zip)
    course_dir = rel(course.nbgrader_course_dir)
    say = (lambda *_: None) if quiet else (lambda msg: print(msg, flush=True))

    with tempfile.TemporaryDirectory(prefix="coursekit-build-") as tmp:
        tmp_path = Path(tmp)
        outputs = StagedOutputs(root, tmp_path / "outputs")
        lab = a.lab()
        say(f"data: the lab's data bundle ({a.data_file}), from {course.mnist_root}")
        bundle = tmp_path / a.data_file
        lab.make_data(bundle)
        staged = stage.prepare(a.master, tmp_path / "stage", bundle, a, course)
        if run_tests:
            say("solution: grading it against every hidden case in this process")
            solution_check.check_solution(staged, a, course)
        say("otter assign: generating the release and autograder")
        otter_built = otter_zip.run_otter_assign(staged.path, tmp_path / "dist", a.master)

        setup = lambda: release_setup.setup_cell(a.name, lab.public_checks, course.rules.ignore_tag)  # noqa: E731
        release = notebooks.make_release(nbformat.read(otter_built.parent.parent / "student" / staged.path.name,
                                                       as_version=4), setup())
        solution = notebooks.make_solutions(nbformat.read(otter_built.parent / staged.path.name, as_version=4),
                                            release, setup())
        for nb, dst in ((release, release_nb), (solution, solution_nb)):
            nbformat.write(nb, outputs.path(dst))
        notebooks.check_release(outputs.path(release_nb))
        notebooks.check_release(outputs.path(solution_nb), hidden_only=True)
        otter_zip.finish_zip(otter_built, outputs.path(zip_path), a, course)
        nbgrader_source = nbgrader_course.write_course(staged, outputs.path(course_dir), a, course)
        nbgrader_source = course_dir / nbgrader_source.relative_to(outputs.path(course_dir))
        self_check: list[str] = []
        if run_tests:
            say("autograder zip: grading the solutions and the release through it (otter run)")
            self_check = zip_check.check_zip(outputs.path(zip_path), outputs.path(solution_nb),
                                             outputs.path(release_nb), tmp_path / "zip_check", a)
        # last: README.md is edited by hand too; each lab rewrites its own block only
        readme_changed = _write_readme(root, outputs, staged, a.name, a is course.assignment())
        outputs.commit()
    if readme_changed:
        say("README.md: rewrote the list of tasks and written questions from the master notebook")
    say(f"wrote {release_nb}\nwrote {solution_nb}\nwrote {zip_path}\nwrote {nbgrader_source}")
    for line in self_check:  # last, as README.md shows them
        say(line)
    return {"release": release_nb, "solutions": solution_nb, "zip": zip_path,
            "nbgrader_course": course_dir, "nbgrader_source": nbgrader_source}
