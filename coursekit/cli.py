"""The `coursekit` command line: build, grade, selfcheck."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import course_config as cfg


def cmd_build(args: argparse.Namespace) -> int:
    from coursekit.build import BuildError, build
    from coursekit.data import DataError

    try:
        build(run_tests=not args.no_run_tests)
    except (BuildError, DataError) as exc:
        print(f"coursekit build: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from coursekit.data import DataError
    from coursekit.engine import course_bundle
    from coursekit.grade import grade_all, summarise

    try:
        cfg.results_visibility()  # a wrong setting stops here, before grading the class
        if not args.cluster:  # on a cluster each worker makes its own from its MNIST_ROOT
            course_bundle()  # once, here: the workers share it
    except (DataError, ValueError) as exc:
        print(f"coursekit grade: {exc}", file=sys.stderr)
        return 1
    missing = [p for p in args.submissions if not p.exists()]
    if missing:
        print(f"coursekit grade: no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    cluster_errors: tuple[type[Exception], ...] = ()
    if args.cluster:
        from coursekit.sandbox import gpu

        try:  # checked here; whether a worker has a GPU is the cluster's to say
            gpu.valid_setting(cfg.TRAINING_CHECK.get("device", "auto"))
        except ValueError as exc:
            print(f"coursekit grade: {exc}", file=sys.stderr)
            return 2
        from coursekit.cluster import ClusterError  # imports Dask: only when asked for

        cluster_errors = (ClusterError,)
        if args.jobs is not None:
            print("note: --jobs is ignored with --cluster: the cluster's workers grade "
                  "(one submission at a time each)", file=sys.stderr)
        # The sandbox that counts is each worker's: it enforces --require-isolation, and
        # every row of grades.csv records the level that graded it.
        print(f"isolation: checked by each Dask worker at {args.cluster} (column `isolation` of "
              f"grades.csv; see docs/security.md)", file=sys.stderr)
    else:
        from coursekit.sandbox import IsolationError, Sandbox, SandboxError, gpu

        jobs = args.jobs or os.cpu_count() or 1
        try:  # where the training check runs: said (or refused) before grading the class
            setting = gpu.check_setting(cfg.TRAINING_CHECK.get("device", "auto"))
            slots = len(gpu.gpu_minors()) * cfg.GPU_SANDBOXES_PER_DEVICE
            if setting == "cuda" and jobs > slots:
                raise gpu.DeviceError(
                    f"course_config.TRAINING_CHECK['device'] is 'cuda', but --jobs {jobs} needs more "
                    f"GPU sandboxes than this machine has ({slots}: GPUs x "
                    f"course_config.GPU_SANDBOXES_PER_DEVICE); grade with --jobs {slots}")
        except (ValueError, gpu.DeviceError) as exc:
            print(f"coursekit grade: {exc}", file=sys.stderr)
            return 2
        plan = gpu.plan(jobs, setting, cfg.GPU_SANDBOXES_PER_DEVICE)
        if plan:
            print(plan, file=sys.stderr)
        probe = Sandbox({}, require=args.require_isolation, sandboxes=jobs)  # and the memory it has
        try:
            probe.start(probe_only=True)  # which layers this machine allows, before any grading
        except (IsolationError, SandboxError) as exc:
            print(f"coursekit grade: {exc}", file=sys.stderr)
            return 3
        finally:
            probe.close()
        print(f"isolation: {probe.level} ({', '.join(probe.layers) or 'no layer'}; see docs/security.md)",
              file=sys.stderr)
    try:
        rows = grade_all(args.submissions, args.out, jobs=args.jobs, progress=not args.quiet,
                         require=args.require_isolation, cluster=args.cluster)
    except KeyboardInterrupt:
        print("\ninterrupted: finished submissions are kept; run the same command again to "
              "grade the rest", file=sys.stderr)
        return 130
    except cluster_errors as exc:  # unreachable, no worker, other code: one line, no traceback
        print(f"coursekit grade: {exc}", file=sys.stderr)
        return 2
    print(summarise(rows, args.out))
    print(f"wrote {args.out / 'grades.csv'}, feedback in {args.out / 'feedback'}, "
          f"charts score_histogram.png and question_pass_rates.png")
    return 0


def _graded_questions(results: dict) -> tuple[dict[str, float], float]:
    """Scores per question and the points possible, as the zip that wrote `results`
    counts them (its own course_config.py: it may differ from this checkout's)."""
    scores, possible = {}, 0.0
    for test in results.get("tests", []):
        if test.get("max_score") is not None:
            scores[test["name"]] = float(test.get("score") or 0.0)
            possible += float(test["max_score"])
    order = list(cfg.AUTOGRADED_POINTS)  # the course's order first, then any other question
    ordered = sorted(scores, key=lambda q: (order.index(q) if q in order else len(order), q))
    return {q: scores[q] for q in ordered}, possible


def cmd_selfcheck(args: argparse.Namespace) -> int:
    """Grade the solutions (must earn every point) and the release (must earn none)
    with `otter run` and the built zip, as Gradescope will; the points are the zip's."""
    from coursekit.grade import otter_run

    ok = True
    for label, folder, full in (("solutions", cfg.SOLUTIONS_DIR, True), ("release", cfg.RELEASE_DIR, False)):
        try:
            scores, possible = _graded_questions(
                otter_run(folder / f"{cfg.ASSIGNMENT}.ipynb", args.autograder))
        except (OSError, RuntimeError) as exc:
            print(f"self-check {label}: FAILED ({exc})")
            ok = False
            continue
        want = possible if full else 0.0
        total = sum(scores.values())
        good = bool(scores) and abs(total - want) < 1e-9
        ok &= good
        detail = ", ".join(f"{q} {s:g}" for q, s in scores.items())
        print(f"self-check {label}: {total:g}/{possible:g} (want {want:g}) [{detail}] "
              f"{'OK' if good else 'FAILED'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `coursekit` console script and `python -m coursekit`."""
    parser = argparse.ArgumentParser(prog="coursekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="build release, solutions and the autograder zip")
    p.add_argument("--no-run-tests", action="store_true",
                   help="skip grading the solution against every test (faster, unchecked)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("grade", help="grade submissions into a grades.csv and feedback")
    p.add_argument("submissions", nargs="+", type=Path, help="notebooks, otter zips or folders")
    p.add_argument("--out", type=Path, required=True, help="output folder (rerun to resume)")
    p.add_argument("--jobs", type=int, default=None, help="parallel graders (default: CPU cores)")
    p.add_argument("--cluster", metavar="tcp://HOST:PORT", default=None,
                   help="grade on the Dask cluster whose scheduler is at this address (workers "
                        "started with `dask worker tcp://HOST:PORT --nthreads 1`; see README); "
                        "--jobs is then ignored")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from coursekit.sandbox import LEVELS

    p.add_argument("--require-isolation", choices=LEVELS, default=None,
                   help="refuse to grade where the sandbox is weaker than this level")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("selfcheck", help="solutions earn full marks, the release earns zero")
    p.add_argument("--autograder", type=Path, default=cfg.AUTOGRADER_ZIP)
    p.set_defaults(func=cmd_selfcheck)

    args = parser.parse_args(argv)
    return args.func(args)
