"""`otter run`'s peak memory and time per submission: what a Gradescope container must hold.

Grades three submissions with `otter run` (what Gradescope's `run_autograder` runs): the
untouched release, the solutions, and a slow correct one (the solutions with a `lookup`
that spends about 3 s of CPU per call on a dead loop), each once per autograder zip given.
While each runs, every 0.1 s it sums the PSS (`/proc/PID/smaps_rollup`: shared pages split
between the processes sharing them) of the `otter run` process and all its descendants
(otter's process, the sandbox's zygote, the job, any Jupyter kernel) and keeps the peak.
Prints one table row per (zip, submission): peak total PSS, the largest single process's
PSS at that moment, wall seconds, and the score.

    .venv/bin/python benchmarks/otter_memory_bench.py                         # the built zip
    .venv/bin/python benchmarks/otter_memory_bench.py --zip before=OLD.zip --zip after=NEW.zip

Run it as root inside `unshare --pid --fork --mount-proc` (it grades with the sandbox).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from coursekit import course  # noqa: E402

A = course.load().assignment()

SLOW_LOOKUP_CELL = '''
import time as _t
_lookup_fast = lookup
def lookup(Q, K, soft=True):
    _end = _t.process_time() + 3.0  # a correct lookup that takes its time
    while _t.process_time() < _end:
        pass
    return _lookup_fast(Q, K, soft)
'''


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        return " ".join(a.decode(errors="replace") for a in args[:4])[:70]
    except OSError:
        return "?"


def measure(zip_path: Path, notebook: Path, out: Path) -> dict:
    """One `otter run`, sampled every 0.1 s: peak total PSS (MB), the processes at the
    peak, wall seconds, and the total score."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "otter", "run", "-a", str(zip_path), "-o", str(out),
                             "--no-logo", str(notebook)], cwd=out,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log: list[bytes] = []
    import threading

    reader = threading.Thread(target=lambda: log.append(proc.stdout.read()), daemon=True)
    reader.start()
    peak, at_peak = 0, []
    while proc.poll() is None:
        sizes = [(p, _pss_kb(p)) for p in _tree(proc.pid)]
        total = sum(s for _, s in sizes)
        if total > peak:
            peak, at_peak = total, [(_name(p), s) for p, s in sorted(sizes, key=lambda x: -x[1])]
        time.sleep(0.1)
    wall = time.monotonic() - start
    reader.join()
    if not (out / "results.json").is_file():
        raise RuntimeError(f"otter run of {notebook} wrote no results.json:\n"
                           + b"".join(log).decode(errors="replace")[-3000:])
    results = json.loads((out / "results.json").read_text())
    return {"peak_mb": peak / 1024, "wall_s": wall, "score": results.get("score"),
            "processes": [(n, round(s / 1024)) for n, s in at_peak if s > 10 * 1024]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", action="append", default=[],
                    help="LABEL=PATH of an autograder zip (default: built=the built zip)")
    args = ap.parse_args()
    zips = dict(z.split("=", 1) for z in args.zip) or {"built": str(A.autograder_zip)}
    zips = {label: str(Path(path).resolve()) for label, path in zips.items()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        solutions = A.solutions_dir / f"{A.name}.ipynb"
        slow = nbformat.read(solutions, as_version=4)
        at = max(i for i, c in enumerate(slow.cells) if c.cell_type == "code" and "def lookup" in c.source)
        slow.cells.insert(at + 1, nbformat.v4.new_code_cell(SLOW_LOOKUP_CELL))
        (tmp / "slow").mkdir()
        nbformat.write(slow, tmp / "slow" / f"{A.name}.ipynb")
        subs = {"release": A.release_dir / f"{A.name}.ipynb", "solutions": solutions,
                "slow correct": tmp / "slow" / f"{A.name}.ipynb"}
        print("| zip | submission | peak total PSS | largest processes at the peak (PSS MB) | wall | score |")
        print("|---|---|---|---|---|---|")
        for label, zip_path in zips.items():
            for name, nb in subs.items():
                got = measure(Path(zip_path), nb, tmp / "out" / label / name.replace(" ", "_"))
                procs = "; ".join(f"{n}: {s}" for n, s in got["processes"][:4])
                print(f"| {label} | {name} | {got['peak_mb']:.0f} MB | {procs} | {got['wall_s']:.1f} s "
                      f"| {got['score']} |", flush=True)


if __name__ == "__main__":
    main()
