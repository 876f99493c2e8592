"""Batch grading for TAs: a class graded in parallel, resumable, with a CSV and feedback.

Each worker process loads the grader once (torch, the hidden inputs, the MNIST slice)
and then grades one submission after another, each in a fresh sandboxed child forked
from it, so no import or start-up cost is paid per submission. Every finished report is
stored under `DIR/.reports/` keyed by the submission's content hash and the grader's
version, written atomically: an interrupted run (Ctrl-C, kill -9) loses nothing it had
finished, and the next run grades only what is missing. `grades.csv` is rewritten
atomically from the stored reports, so it is never half-written.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path

import course_config as cfg

QUESTIONS = list(cfg.AUTOGRADED_POINTS)
POSSIBLE = sum(cfg.AUTOGRADED_POINTS.values())
SUFFIXES = (".ipynb", ".zip")


# --- finding submissions -------------------------------------------------------------

def _gradescope_names(folder: Path) -> dict[str, str]:
    """Student names by submission folder, from a Gradescope export's submission_metadata.yml."""
    meta = folder / "submission_metadata.yml"
    if not meta.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(meta.read_text()) or {}
    except yaml.YAMLError:
        return {}
    names = {}
    for sub_id, info in data.items() if isinstance(data, dict) else []:
        people = (info or {}).get(":submitters") or []
        ids = [str(p.get(":sid") or p.get(":email") or p.get(":name") or "") for p in people
               if isinstance(p, dict)]
        if any(ids):
            names[str(sub_id)] = "+".join(i for i in ids if i)
    return names


def find_submissions(paths: list[Path]) -> list[tuple[str, Path]]:
    """(student id, file) for every submission under `paths`, in a stable order.

    Files are taken as they are; folders are searched for notebooks and zips. In a
    Gradescope export (`submission_metadata.yml` beside `submission_<n>/` folders) each
    folder is one submission named after its submitters; its notebook is preferred.
    """
    found: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_file():
            found.append((path.stem, path))
            continue
        names = _gradescope_names(path)
        if names:
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                files = sorted(f for f in sub.rglob("*") if f.suffix in SUFFIXES and f.is_file())
                files.sort(key=lambda f: f.suffix != ".ipynb")
                if files:
                    found.append((names.get(sub.name, sub.name), files[0]))
            continue
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix in SUFFIXES and ".ipynb_checkpoints" not in f.parts:
                found.append((str(f.relative_to(path).with_suffix("")), f))
    seen: dict[str, int] = {}
    unique = []
    for sid, f in found:  # same id twice (two files of one student): keep both, numbered
        seen[sid] = seen.get(sid, 0) + 1
        unique.append((sid if seen[sid] == 1 else f"{sid}#{seen[sid]}", f))
    return unique


# --- the grader's identity and stored reports ------------------------------------------

def grader_version() -> str:
    """Hash of everything that decides a score: engine code, course_config, the checks."""
    h = hashlib.sha256()
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):  # the whole package: engine, checks, sandbox
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    h.update((cfg.REPO_ROOT / "course_config.py").read_bytes())
    return h.hexdigest()[:16]


def content_key(path: Path, version: str) -> str:
    h = hashlib.sha256(version.encode())
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:32]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- workers -------------------------------------------------------------------------

_GRADER = None


def _init_worker(slots: "mp.Queue[int]") -> None:
    global _GRADER
    from coursekit.sandbox import _die_with_parent

    _die_with_parent()  # kill -9 of `coursekit grade` leaves no workers behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from coursekit.engine import default_grader

    _GRADER = default_grader(slot=slots.get())


def _grade_one(path: str, report_path: str) -> str:
    report = _GRADER.grade_path(Path(path))
    _write_atomic(Path(report_path), json.dumps(asdict(report)))
    return report_path


# --- outputs -------------------------------------------------------------------------

def _load_report(path: Path):
    from coursekit.engine import CaseResult, Report

    data = json.loads(path.read_text())
    return Report(status=data["status"], message=data["message"],
                  cases=[CaseResult(**c) for c in data["cases"]])


def gradescope_results(report) -> dict:
    """A Gradescope-format results.json for one report (the autograder's own layout)."""
    tests = []
    for q in QUESTIONS:
        cases = [c for c in report.cases if c.question == q]
        lines = [f"{c.case}: " + ("✅ passed" if c.passed else f"❌ {c.message}") for c in cases]
        tests.append({"name": q, "score": report.scores[q], "max_score": float(cfg.AUTOGRADED_POINTS[q]),
                      "visibility": "visible", "output": "\n".join(lines)})
    out = {"score": report.total, "tests": tests}
    if report.message:
        out["output"] = f"{report.status}: {report.message}"
    return out


def markdown_report(student: str, report) -> str:
    """A readable per-student report."""
    lines = [f"# {cfg.ASSIGNMENT_TITLE}: {student}", "",
             f"**Score: {report.total:g} / {POSSIBLE:g}** (autograded part; written answers are graded by hand)", ""]
    if report.status != "ok" or report.message:
        lines += [f"> {report.status}: {report.message}", ""]
    lines += ["| question | score | what failed |", "|---|---|---|"]
    feedback = report.feedback()
    for q in QUESTIONS:
        failed = "<br>".join(feedback[q]) or "all checks passed"
        lines.append(f"| {q} | {report.scores[q]:g} / {cfg.AUTOGRADED_POINTS[q]:g} | {failed} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[tuple[str, object]], path: Path) -> None:
    """grades.csv, atomically: student, one column per question, total, status, message."""
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", *QUESTIONS, "total", "status", "message"])
    for student, r in rows:
        writer.writerow([student, *(f"{r.scores[q]:g}" for q in QUESTIONS), f"{r.total:g}",
                         r.status, r.message])
    _write_atomic(path, buf.getvalue())


def summarise(rows: list[tuple[str, object]], out_dir: Path) -> str:
    """The terminal summary, plus a score histogram and per-question pass rates as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = [r.total for _, r in rows]
    n = len(rows) or 1
    lines = [f"{len(rows)} submissions, mean {sum(totals) / n:.2f} / {POSSIBLE:g}"]
    lines.append(f"{'question':<10} {'mean':>6} {'full marks':>11}")
    rates = {}
    for q in QUESTIONS:
        full = sum(r.scores[q] == cfg.AUTOGRADED_POINTS[q] for _, r in rows)
        rates[q] = full / n
        mean = sum(r.scores[q] for _, r in rows) / n
        lines.append(f"{q:<10} {mean:>6.2f} {full:>5}/{len(rows):<5}")
    statuses: dict[str, int] = {}
    for _, r in rows:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    lines.append("status: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(totals, bins=[x - 0.5 for x in range(int(POSSIBLE) + 2)], color="#4C72B0", edgecolor="white")
    ax.set_xlabel(f"autograded score (of {POSSIBLE:g})")
    ax.set_ylabel("submissions")
    ax.set_title(f"{cfg.ASSIGNMENT_TITLE}: scores")
    fig.tight_layout()
    fig.savefig(out_dir / "score_histogram.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(list(rates), [100 * v for v in rates.values()], color="#55A868")
    ax.set_ylabel("% with full marks")
    ax.set_ylim(0, 100)
    ax.set_title("Per-question pass rate")
    fig.tight_layout()
    fig.savefig(out_dir / "question_pass_rates.png", dpi=100)
    plt.close(fig)
    return "\n".join(lines)


# --- the batch -------------------------------------------------------------------------

def grade_all(paths: list[Path], out_dir: Path, jobs: int | None = None,
              progress: bool = True) -> list[tuple[str, object]]:
    """Grade every submission under `paths` into `out_dir`; resumes an interrupted run."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    version = grader_version()
    subs = find_submissions(paths)
    report_dir = out_dir / ".reports"
    todo = []
    keys = {}
    for sid, path in subs:
        key = content_key(path, version)
        keys[sid] = key
        if not (report_dir / f"{key}.json").is_file():
            todo.append((sid, path, key))
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    if todo:
        ctx = mp.get_context("fork")  # workers inherit torch; none has touched CUDA
        slots = ctx.Queue()
        for i in range(jobs):
            slots.put(i)
        bar = tqdm(total=len(subs), initial=len(subs) - len(todo), unit="submission",
                   disable=not progress, desc="grading")
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(slots,)) as pool:
            pending = {pool.submit(_grade_one, str(path), str(report_dir / f"{key}.json"))
                       for _, path, key in todo}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    fut.result()
                    bar.update(1)
        bar.close()
    rows = [(sid, _load_report(report_dir / f"{keys[sid]}.json")) for sid, _ in subs]
    for sid, report in rows:
        fb = out_dir / "feedback" / sid.replace("/", "__")
        _write_atomic(fb / "results.json", json.dumps(gradescope_results(report), indent=1))
        _write_atomic(fb / "report.md", markdown_report(sid, report))
    write_csv(rows, out_dir / "grades.csv")
    return rows


# --- otter run, for the self-check and comparisons -------------------------------------

def otter_run(notebook: Path, autograder: Path = cfg.AUTOGRADER_ZIP, timeout: float = 600) -> dict:
    """Grade one submission with `otter run` and the built zip; return its results.json."""
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


def scores_from_results(results: dict) -> dict[str, float]:
    """Per-question scores from a results.json (missing questions score 0)."""
    scores = {q: 0.0 for q in QUESTIONS}
    for test in results.get("tests", []):
        if test.get("name") in scores and test.get("score") is not None:
            scores[test["name"]] = float(test["score"])
    return scores
