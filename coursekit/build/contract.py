"""What the master, the lab's `lab.toml` and its checks must agree on, checked before
anything is built. Each error names the file to edit and what to change there. (The
course's and the lab's settings on their own are checked when they are read:
`coursekit.course`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coursekit import lab_files
from coursekit.build.errors import BuildError
from coursekit.build.master import Master, Question


def check_points(master: Master, path: Path, a: Any) -> None:
    """Every question has points in the lab's lab.toml, in the table of its kind, and every
    question given points there is in the master (`a`: the `course.Assignment`)."""
    toml = lab_files.relative(a.folder / "lab.toml", a.root)
    for q in master.questions:
        if q.name not in a.points and q.name not in a.manual_points:
            raise BuildError(f"{path}: question '{q.name}' has no points in {toml} "
                             f"(add `{q.name} = 1` under [{'manual_points' if q.manual else 'points'}])")
        if q.name in a.manual_points and not q.manual:
            raise BuildError(f"{path}: question '{q.name}' has points in [manual_points] of {toml} (a "
                             "written question) but its BEGIN QUESTION cell lacks `manual: true`")
        if q.name in a.points and q.manual:
            raise BuildError(f"{path}: question '{q.name}' has points in [points] of {toml} (an "
                             "autograded question) but its BEGIN QUESTION cell says `manual: true` "
                             "(written questions take their points from [manual_points])")
    names = {q.name for q in master.questions}
    missing = sorted((set(a.points) | set(a.manual_points)) - names)
    if missing:
        raise BuildError(f"{path}: {toml} gives points to questions the notebook "
                         f"lacks: {', '.join(missing)} (add their BEGIN QUESTION blocks to the notebook, "
                         f"or drop them from {toml})")


def _check_hidden_cells(q: Question, cases: dict[str, str], path: Path, checks: str) -> None:
    run_case = "run_case"
    ran: list[str] = []
    for test in q.hidden_tests:
        if not test.case_ids:
            raise BuildError(f"{path}: question '{q.name}': its hidden test cell (cell {test.index}) does not "
                             f"call {run_case}(...) (a case of {checks})")
        if len(test.case_ids) > 1:
            raise BuildError(f"{path}: question '{q.name}': its hidden test cell (cell {test.index}) runs "
                             f"{', '.join(test.case_ids)}: give each case its own hidden test cell (otter "
                             "splits a question's points over its hidden test cells)")
        ran += test.case_ids
    if not ran:
        raise BuildError(f"{path}: autograded question '{q.name}' has no hidden checks: add its cases to "
                         f"{checks} and, for each, a hidden test cell (`hidden: true` in its "
                         f"BEGIN TEST CONFIG) in the question's BEGIN TESTS block that calls "
                         f"{run_case}(\"<case>\", ...)")
    unknown = sorted(set(ran) - set(cases))
    if unknown:
        raise BuildError(f"{path}: question '{q.name}': its hidden test cells run {', '.join(unknown)}, "
                         f"not a case of {checks}")
    elsewhere = sorted(c for c in set(ran) if cases[c] != q.name)
    if elsewhere:
        raise BuildError(f"{path}: question '{q.name}': its hidden test cells run "
                         + ", ".join(f"{c} (a case of question '{cases[c]}' in {checks})"
                                     for c in elsewhere))
    twice = sorted({c for c in ran if ran.count(c) > 1})
    if twice:
        raise BuildError(f"{path}: question '{q.name}': more than one hidden test cell runs "
                         f"{', '.join(twice)}: one cell per case")
    missing = sorted({c for c, question in cases.items() if question == q.name} - set(ran))
    if missing:
        raise BuildError(f"{path}: question '{q.name}': {checks} scores {', '.join(missing)} "
                         "for it, but no hidden test cell runs " + ("them" if len(missing) > 1 else "it")
                         + " (the points are split over the hidden test cells)")


def check_lab(master: Master, path: Path, a: Any) -> None:
    """The master's autograded questions and the lab's checks match one to one: each has
    hidden test cells running exactly its cases, and a public check where it has public tests."""
    lab = a.lab()
    cases = {cid: case.question for cid, case in lab.cases.items()}
    public = lab.public_questions()
    checks = f"the lab's cases ({lab_files.relative(a.folder / 'lab.py', a.root)}: Lab.cases)"
    public_file = lab_files.relative(lab.public_checks, a.root)
    autograded = [q for q in master.questions if not q.manual]
    for q in master.questions:
        if q.manual and q.tests:
            raise BuildError(f"{path}: written question '{q.name}' (manual: true) has test cells: move "
                             "them to an autograded question, or drop `manual: true`")
    for q in autograded:
        _check_hidden_cells(q, cases, path, checks)
        if q.public_tests and q.name not in public:
            raise BuildError(f"{public_file}: autograded question '{q.name}' has public test cells in "
                             f"{path.name} but no public check: add '{q.name}' to QUESTIONS (the name "
                             f"students define, e.g. '{q.code_name.split('.')[0]}') and its checks to CHECKS")
    orphans = sorted({question for question in cases.values()} - {q.name for q in autograded})
    if orphans:
        raise BuildError(f"{checks} has cases for {', '.join(repr(o) for o in orphans)}, which "
                         f"{path.name} has no autograded question for: add the question (BEGIN QUESTION "
                         "and hidden test cells) or drop its cases")


def check(master: Master, path: Path, a: Any) -> None:
    """Every check of this module, in the order a TA would fix them (`a`: the assignment)."""
    check_points(master, path, a)
    check_lab(master, path, a)
