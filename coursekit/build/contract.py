"""What the master, `course_config.py` and the lab's checks must agree on, checked before
anything is built. Each error names the file to edit and what to change there."""

from __future__ import annotations

from pathlib import Path

import course_config as cfg
from coursekit import lab_files
from coursekit.build.errors import BuildError
from coursekit.build.master import Master, Question


def check_settings() -> None:
    """course_config.py on its own: a question in one points table only, a valid visibility."""
    both = sorted(set(cfg.AUTOGRADED_POINTS) & set(cfg.MANUAL_POINTS))
    if both:
        raise BuildError(f"course_config.py: {', '.join(both)} in both AUTOGRADED_POINTS and MANUAL_POINTS")
    try:
        cfg.results_visibility()  # checked here, not when the first student's results are written
    except ValueError as exc:
        raise BuildError(f"course_config.py: {exc}") from None


def check_points(master: Master, path: Path) -> None:
    """Every question has points in course_config.py, in the table of its kind, and every
    question given points there is in the master."""
    for q in master.questions:
        if q.name not in cfg.AUTOGRADED_POINTS and q.name not in cfg.MANUAL_POINTS:
            table = "MANUAL_POINTS" if q.manual else "AUTOGRADED_POINTS"
            raise BuildError(f"{path}: question '{q.name}' has no points in course_config.py: add "
                             f"\"{q.name}\": <points> to {table}")
        if q.name in cfg.MANUAL_POINTS and not q.manual:
            raise BuildError(f"{path}: question '{q.name}' has points in MANUAL_POINTS (a written "
                             "question) but its BEGIN QUESTION cell lacks `manual: true`")
        if q.name in cfg.AUTOGRADED_POINTS and q.manual:
            raise BuildError(f"{path}: question '{q.name}' has points in AUTOGRADED_POINTS (an "
                             "autograded question) but its BEGIN QUESTION cell says `manual: true` "
                             "(written questions take their points from MANUAL_POINTS)")
    names = {q.name for q in master.questions}
    missing = sorted((set(cfg.AUTOGRADED_POINTS) | set(cfg.MANUAL_POINTS)) - names)
    if missing:
        raise BuildError(f"{path}: course_config.py gives points to questions the notebook "
                         f"lacks: {', '.join(missing)} (add their BEGIN QUESTION blocks to the notebook, "
                         "or drop them from course_config.py)")


def _check_hidden_cells(q: Question, cases: dict[str, str], path: Path) -> None:
    checks = lab_files.relative(lab_files.CHECKS_SOURCE)
    run_case = f"{lab_files.CHECKS_IMPORT}.run_case"
    ran: list[str] = []
    for test in q.hidden_tests:
        if not test.case_ids:
            raise BuildError(f"{path}: question '{q.name}': its hidden test cell (cell {test.index}) does not "
                             f"call {run_case}(...) (a case of {checks} CASES)")
        if len(test.case_ids) > 1:
            raise BuildError(f"{path}: question '{q.name}': its hidden test cell (cell {test.index}) runs "
                             f"{', '.join(test.case_ids)}: give each case its own hidden test cell (otter "
                             "splits a question's points over its hidden test cells)")
        ran += test.case_ids
    if not ran:
        raise BuildError(f"{path}: autograded question '{q.name}' has no hidden checks: add its cases to "
                         f"{checks} CASES and, for each, a hidden test cell (`hidden: true` in its "
                         f"BEGIN TEST CONFIG) in the question's BEGIN TESTS block that calls "
                         f"{run_case}(\"<case>\", ...)")
    unknown = sorted(set(ran) - set(cases))
    if unknown:
        raise BuildError(f"{path}: question '{q.name}': its hidden test cells run {', '.join(unknown)}, "
                         f"not a case of {checks} CASES")
    elsewhere = sorted(c for c in set(ran) if cases[c] != q.name)
    if elsewhere:
        raise BuildError(f"{path}: question '{q.name}': its hidden test cells run "
                         + ", ".join(f"{c} (a case of question '{cases[c]}' in {checks} CASES)"
                                     for c in elsewhere))
    twice = sorted({c for c in ran if ran.count(c) > 1})
    if twice:
        raise BuildError(f"{path}: question '{q.name}': more than one hidden test cell runs "
                         f"{', '.join(twice)}: one cell per case")
    missing = sorted({c for c, question in cases.items() if question == q.name} - set(ran))
    if missing:
        raise BuildError(f"{path}: question '{q.name}': {checks} CASES scores {', '.join(missing)} "
                         "for it, but no hidden test cell runs " + ("them" if len(missing) > 1 else "it")
                         + " (the points are split over the hidden test cells)")


def check_lab(master: Master, path: Path) -> None:
    """The master's autograded questions and the lab's checks match one to one: each has
    hidden test cells running exactly its cases, and a public check where it has public tests."""
    cases = lab_files.hidden_cases()
    public = lab_files.public_questions()
    checks = lab_files.relative(lab_files.CHECKS_SOURCE)
    public_file = lab_files.relative(lab_files.PUBLIC_CHECKS_SOURCE)
    autograded = [q for q in master.questions if not q.manual]
    for q in master.questions:
        if q.manual and q.tests:
            raise BuildError(f"{path}: written question '{q.name}' (manual: true) has test cells: move "
                             "them to an autograded question, or drop `manual: true`")
    for q in autograded:
        _check_hidden_cells(q, cases, path)
        if q.public_tests and q.name not in public:
            raise BuildError(f"{public_file}: autograded question '{q.name}' has public test cells in "
                             f"{path.name} but no public check: add '{q.name}' to QUESTIONS (the name "
                             f"students define, e.g. '{q.code_name.split('.')[0]}') and its checks to CHECKS")
    orphans = sorted({question for question in cases.values()} - {q.name for q in autograded})
    if orphans:
        raise BuildError(f"{checks}: CASES has cases for {', '.join(repr(o) for o in orphans)}, which "
                         f"{path.name} has no autograded question for: add the question (BEGIN QUESTION "
                         "and hidden test cells) or drop its cases")


def check(master: Master, path: Path) -> None:
    """Every check of this module, in the order a TA would fix them."""
    check_settings()
    check_points(master, path)
    check_lab(master, path)
