"""Load the definitions of a lab notebook (solutions or a submission) into a namespace.

Runs the same cells the grader runs (`coursekit.submission.gradable_cells`: not the cells
tagged `otter_ignore`, not otter's own cells), in order; a cell that raises does not stop
the cells after it. Only for trusted notebooks (benchmarks, tests): this runs the code in
this process, unlike the grader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat


def run_cells(cells: list[tuple[str, str]], name: str = "__lab__",
              quiet: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Execute `(label, source)` cells in order in one namespace; a cell that raises does
    not stop the cells after it. Returns the namespace and one line per cell that raised
    (`cell <label> (line N of <file>) raised Type: message`). `quiet` swallows their output."""
    import contextlib
    import io
    import traceback

    namespace: dict[str, Any] = {"__name__": name}
    problems: list[str] = []
    for label, source in cells:
        try:
            with contextlib.ExitStack() as stack:
                if quiet:
                    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
                    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
                exec(compile(source, f"<{name} cell {label}>", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001 - as in the grader: later cells still run
            where = traceback.extract_tb(exc.__traceback__)[-1]
            problems.append(f"cell {label} (line {where.lineno} of {where.filename}) raised "
                            f"{type(exc).__name__}: {exc}")
    return namespace, problems


def load_definitions(path: str | Path) -> dict[str, Any]:
    """Execute the gradable cells of the notebook at `path` and return its globals."""
    from coursekit.submission import gradable_cells

    cells = gradable_cells(nbformat.read(path, as_version=4))
    return run_cells([(f"{i}", src) for i, src in enumerate(cells)], f"{Path(path).name}")[0]
