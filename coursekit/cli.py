"""The `coursekit` command line: build, grade, selfcheck."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_build(args: argparse.Namespace) -> int:
    from coursekit import course
    from coursekit.build import BuildError, build
    from coursekit.lab import DataError, LabError

    try:
        names = [args.assignment] if args.assignment else list(course.load().assignments)
        for name in names:  # each lab all or nothing
            build(run_tests=not args.no_run_tests, assignment=name)
    except (BuildError, DataError, course.ConfigError, LabError) as exc:
        print(f"coursekit build: {exc}", file=sys.stderr)
        return 1
    return 0


# `coursekit grade`'s exit codes: scripts tell "run it again" from "fix something first"
GRADED = 0  # every submission has its row
CANNOT_GRADE = 2  # nothing was graded: a setting, the data, the GPUs, the sandbox, the cluster
TO_RETRY = 75  # graded, but some rows are `error` or were not graded: run the same command again
INTERRUPTED = 130  # Ctrl-C: what was finished is kept
EXIT_CODES = (f"exit status: {GRADED} every submission graded; {TO_RETRY} graded, but some rows "
              f"are `error` or not graded (run the same command again to retry them); "
              f"{CANNOT_GRADE} nothing could be graded (the message says why); {INTERRUPTED} interrupted")


def cmd_grade(args: argparse.Namespace) -> int:
    from coursekit.batch.executor import CannotGrade
    from coursekit.batch.grading import grade_class
    from coursekit.batch.outputs import summarise

    try:
        outcome = grade_class(args.submissions, args.out, jobs=args.jobs, cluster=args.cluster,
                              require=args.require_isolation, progress=not args.quiet,
                              assignment=args.assignment)
    except KeyboardInterrupt:
        print("\ninterrupted: finished submissions are kept; run the same command again to "
              "grade the rest", file=sys.stderr)
        return INTERRUPTED
    except CannotGrade as exc:  # one line, no traceback
        print(f"coursekit grade: {exc}", file=sys.stderr)
        return CANNOT_GRADE
    print(summarise(outcome.rows, args.out, outcome.assignment))
    print(f"wrote {args.out / 'grades.csv'}, feedback in {args.out / 'feedback'}, "
          f"charts score_histogram.png and question_pass_rates.png")
    if outcome.stopped:
        print(f"coursekit grade: {outcome.stopped}", file=sys.stderr)
    if outcome.to_retry:
        print(f"coursekit grade: {outcome.to_retry} submission(s) to grade again (error rows or not "
              f"graded): run the same command again", file=sys.stderr)
        return TO_RETRY
    return GRADED


def cmd_selfcheck(args: argparse.Namespace) -> int:
    """Grade the solutions (must earn every point) and the release (must earn none)
    with `otter run` and the built zip, as Gradescope will (`build.zip_check.self_check`)."""
    import tempfile

    from coursekit import course
    from coursekit.build.errors import BuildError
    from coursekit.build.zip_check import self_check

    try:
        a = course.load().assignment(args.assignment)
    except course.ConfigError as exc:
        print(f"coursekit selfcheck: {exc}", file=sys.stderr)
        return 1
    zip_path = args.autograder or a.autograder_zip
    if not zip_path.is_file():
        print(f"coursekit selfcheck: autograder zip {zip_path} not found: run `coursekit build` first",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="coursekit-selfcheck-") as work:
        try:
            lines, problems = self_check(zip_path, a.solutions_dir / f"{a.name}.ipynb",
                                         a.release_dir / f"{a.name}.ipynb", Path(work), a.points)
        except BuildError as exc:
            print(f"self-check: FAILED ({exc})")
            return 1
    for line in lines:
        print(line)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `coursekit` console script and `python -m coursekit`."""
    parser = argparse.ArgumentParser(prog="coursekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="build release, solutions and the autograder zip")
    p.add_argument("--no-run-tests", action="store_true",
                   help="skip grading the solution against every test (faster, unchecked)")
    p.add_argument("--assignment", metavar="NAME", default=None,
                   help="build this lab only (default: every lab of course_config.LABS)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("grade", help="grade submissions into a grades.csv and feedback",
                       description="Grade submissions into a grades.csv and feedback; rerun to "
                                   "resume or retry. " + EXIT_CODES)
    p.add_argument("submissions", nargs="+", type=Path, help="notebooks, otter zips or folders")
    p.add_argument("--out", type=Path, required=True, help="output folder (rerun to resume)")
    p.add_argument("--jobs", type=int, default=None, help="parallel graders (default: CPU cores)")
    p.add_argument("--cluster", metavar="tcp://HOST:PORT", default=None,
                   help="grade on the Dask cluster whose scheduler is at this address (workers "
                        "started with `dask worker tcp://HOST:PORT --nthreads 1`; see README); "
                        "--jobs is then ignored")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--assignment", metavar="NAME", default=None,
                   help="the lab to grade (default: the first of course_config.LABS)")
    from coursekit.sandbox import LEVELS

    p.add_argument("--require-isolation", choices=LEVELS, default=None,
                   help="refuse to grade where the sandbox is weaker than this level")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("selfcheck", help="solutions earn full marks, the release earns zero")
    p.add_argument("--autograder", type=Path, default=None,
                   help="the autograder zip (default: the assignment's built one)")
    p.add_argument("--assignment", metavar="NAME", default=None,
                   help="the lab to check (default: the first of course_config.LABS)")
    p.set_defaults(func=cmd_selfcheck)

    args = parser.parse_args(argv)
    return args.func(args)
