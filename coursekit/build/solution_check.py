"""Grade the solution against every hidden case in this process: the build's readable check.

It runs before anything is laid out, and says one line per failed case with the exception
the solution raised (no traceback), which a run through the autograder cannot.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from coursekit import lab_files
from coursekit.build.errors import BuildError
from coursekit.build.master import Role
from coursekit.build.notebooks import clean_solution_source
from coursekit.build.stage import Staged

def solution_definitions(staged: Staged, ignore_tag: str) -> tuple[dict[str, Any], list[str]]:
    """Run the solution's gradable code (trusted: the master's own) in this process.

    The code cells the grader runs (not tagged otter_ignore, not test or prompt cells),
    with otter's prompts and markers dropped; returns their globals and one line per cell
    that raised.
    """
    from coursekit.notebook_defs import run_cells

    cells = [(f"{i}", clean_solution_source(cell.source)) for i, cell in enumerate(staged.nb.cells)
             if cell.cell_type == "code" and staged.master.roles[i] in (Role.GIVEN, Role.SOLUTION)
             and ignore_tag not in cell.metadata.get("tags", [])]
    namespace, problems = run_cells(cells, "__solution__", quiet=True)
    return namespace, [f"  {line}" for line in problems]


def exception_lines(log: str) -> list[str]:
    """The final `Type: message` line of each traceback in `log`, once each."""
    found: list[str] = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            last = next((ln for ln in lines[i + 1:] if ln and not ln.startswith(" ")), "")
            if last and last not in found:
                found.append(last.strip())
    return found


def check_solution(staged: Staged, a: Any, course: Any) -> None:
    """Raise BuildError, one line per failed case, unless the solution passes every hidden
    case of the assignment `a`'s lab (`Lab.run_case`, in this process: the master is trusted)."""
    import torch

    from coursekit.lab import CheckFailed

    lab = a.lab()
    namespace, failed = solution_definitions(staged, course.rules.ignore_tag)
    defs = {name: namespace.get(name) for name in lab.definitions}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the grader: the training case takes ~2 s, not 30 on a busy box
    try:
        inputs = lab.inputs(lab.load_data(staged.bundle), lab.settings)
        for case_id, case in lab.cases.items():
            log = io.StringIO()
            try:
                with contextlib.redirect_stderr(log), contextlib.redirect_stdout(io.StringIO()):
                    lab.run_case(case_id, defs, inputs)
            except CheckFailed as exc:
                message = str(exc)
            except Exception as exc:  # noqa: BLE001 - the check itself broke: say how
                message = f"the check raised {type(exc).__name__}: {exc}"
            else:
                continue
            raised = exception_lines(log.getvalue())
            failed.append(f"  {case_id} ({case.question}): {message}"
                          + (f" [{'; '.join(raised[:2])}]" if raised else ""))
    finally:
        torch.set_num_threads(threads)
    if failed:
        raise BuildError(f"{lab_files.relative(a.master, a.root)}: the solution fails its own hidden tests "
                         f"(fix the solution in the notebook, or the check in the lab's folder "
                         f"{lab_files.relative(a.folder, a.root)}):\n" + "\n".join(failed))
