"""Grade the solutions and the release through the zip that ships, as Gradescope will.

`otter run -a <zip>` on the built solutions notebook (it must earn every autograded
point) and on the release (it must earn none), both at once. This is the build's second
and last grading of the solution: the first, in this process, gives readable messages;
this one proves the zip itself (engine, sandbox, data, settings) grades it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from coursekit import lab_files
from coursekit.build.errors import BuildError

TIMEOUT_S = 900


def _start(zip_path: Path, notebook: Path, out: Path) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "otter", "run", "-a", str(zip_path.resolve()), "-o", str(out),
           "--no-logo", str(notebook.resolve())]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=out)


def _results(proc: subprocess.Popen, out: Path, what: str) -> dict:
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BuildError(f"{what}: otter run took over {TIMEOUT_S} s") from None
    results = out / "results.json"
    if not results.is_file():
        tail = " ".join(output.split())[-400:]
        raise BuildError(f"{what}: otter run wrote no results.json (exit {proc.returncode}): {tail}")
    return json.loads(results.read_text())


def _scores(results: dict, points: Mapping[str, float]) -> dict[str, tuple[float, float, str]]:
    """question -> (score, possible, output) for the autograded questions, in `points`' order."""
    got = {t["name"]: (float(t.get("score") or 0.0), float(t.get("max_score") or 0.0), t.get("output") or "")
           for t in results.get("tests", []) if t.get("max_score") is not None}
    return {q: got.get(q, (0.0, float(p), "not graded")) for q, p in points.items()}


def self_check_line(label: str, scores: dict[str, tuple[float, float, str]], full: bool) -> tuple[str, bool]:
    """The line `coursekit selfcheck` prints, and whether the scores are what is wanted."""
    total = sum(s for s, _, _ in scores.values())
    possible = sum(p for _, p, _ in scores.values())
    want = possible if full else 0.0
    good = bool(scores) and abs(total - want) < 1e-9
    detail = ", ".join(f"{q} {s:g}" for q, (s, _, _) in scores.items())
    return f"self-check {label}: {total:g}/{possible:g} (want {want:g}) [{detail}] {'OK' if good else 'FAILED'}", good


def self_check(zip_path: Path, solutions: Path, release: Path, work: Path,
               points: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """Grade both notebooks through `zip_path` at once: the two self-check lines, and for
    each notebook scored wrongly, its line and what the grader said of each wrong question."""
    procs = {label: (_start(zip_path, nb, work / label), nb)
             for label, nb in (("solutions", solutions), ("release", release))}
    lines, problems = [], []
    for label, (proc, nb) in procs.items():
        full = label == "solutions"
        scores = _scores(_results(proc, work / label, f"{zip_path.name} on the {label}"), points)
        line, good = self_check_line(label, scores, full)
        lines.append(line)
        if not good:
            wrong = {q: out for q, (s, p, out) in scores.items() if (s < p if full else s > 0)}
            problems.append(line + "\n" + "\n".join(
                f"  {q}: {' '.join(out.split())[:300]}" for q, out in wrong.items()))
    return lines, problems


def check_zip(zip_path: Path, solutions: Path, release: Path, work: Path, a: Any) -> list[str]:
    """`self_check`'s two lines, or BuildError naming the questions the zip scores wrongly
    (`a`: the assignment)."""
    lines, problems = self_check(zip_path, solutions, release, work, a.points)
    if problems:
        raise BuildError(
            f"{zip_path.name}: the autograder zip does not grade the built notebooks as it must "
            "(the solutions passed every hidden case in this process, so look at what only the "
            "zip has: the sandboxed student side, e.g. a name the solution defines but the job "
            f"does not look up (Lab.definitions in {lab_files.relative(a.folder / 'lab.py', a.root)}), "
            "and the bundled files):\n" + "\n".join(problems))
    return lines
