"""One submission through `otter run` and the built autograder zip, as Gradescope grades
it: what `coursekit selfcheck` and the comparisons in tests and benchmarks use."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def otter_run(notebook: Path, autograder: Path, timeout: float = 600) -> dict:
    """Grade one submission with `otter run` and the built zip `autograder` (an
    `Assignment.autograder_zip`); return its results.json."""
    if not autograder.is_file():
        raise FileNotFoundError(f"autograder zip {autograder} not found: run `coursekit build` first")
    with tempfile.TemporaryDirectory(prefix="coursekit-otter-") as tmp:
        cmd = [sys.executable, "-m", "otter", "run", "-a", str(autograder.resolve()),
               "-o", tmp, "--no-logo", str(notebook.resolve())]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        results = Path(tmp) / "results.json"
        if not results.is_file():
            raise RuntimeError(f"otter run wrote no results.json (exit {proc.returncode}): "
                               f"{(proc.stderr or proc.stdout)[-500:]}")
        return json.loads(results.read_text())
