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
import io
import json
import multiprocessing as mp
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import unicodedata
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import course_config as cfg
from coursekit.report import MAX_REPORT_BYTES, Report, ReportError, all_failed, decode, encode, gradescope_results

QUESTIONS = list(cfg.AUTOGRADED_POINTS)
POSSIBLE = sum(cfg.AUTOGRADED_POINTS.values())
SUFFIXES = (".ipynb", ".zip")
MAX_ID_CHARS = 100
MAX_SEARCH_DEPTH = 20  # a Gradescope export is 2 deep; deeper trees are not submissions
MAX_METADATA_BYTES = 16 << 20
WORKER_DIED = "the grading process died while grading it; it is retried on the next run"


# --- finding submissions -------------------------------------------------------------

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._@+#-]+")


def safe_student_id(raw: object) -> str:
    """A student id that is safe as a folder name, a CSV cell and Markdown text.

    Ids come from file names and Gradescope metadata, so they are hostile: accents are
    dropped (José -> Jose), every run of other characters than letters, digits and
    `._@+#-` (spaces, slashes, parentheses, control characters) becomes one `_`, `..`
    becomes `.`, leading and trailing `._-` are stripped (no hidden files, no `..`, no
    option-like names), and the id is cut to 100 characters; an empty result reads
    `submission`. `alice (1).ipynb` -> `alice_1`, `sec1/bob.ipynb` -> `sec1__bob`.
    """
    text = unicodedata.normalize("NFKD", str(raw)[:4 * MAX_ID_CHARS])
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _UNSAFE_ID_CHARS.sub("_", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = text.strip("._-")[:MAX_ID_CHARS].rstrip("._-")
    return text or "submission"


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)  # lstat: a link is not a regular file
    except OSError:
        return False


def _search(folder: Path, skip: tuple[str, ...] = (".ipynb_checkpoints", "__MACOSX")) -> list[Path]:
    """Notebooks and zips under `folder` that are regular files, never through a link."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        depth = len(Path(root).relative_to(folder).parts)
        dirs[:] = [d for d in dirs if d not in skip and depth < MAX_SEARCH_DEPTH
                   and not os.path.islink(os.path.join(root, d))]
        found += [Path(root, f) for f in files if f.endswith(SUFFIXES) and _is_regular(Path(root, f))]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def _gradescope_names(folder: Path) -> dict[str, str]:
    """Raw student names by submission folder, from a Gradescope export's
    submission_metadata.yml (hostile text: `find_submissions` makes them safe ids)."""
    meta = folder / "submission_metadata.yml"
    if not _is_regular(meta) or meta.stat().st_size > MAX_METADATA_BYTES:
        return {}
    import yaml

    try:
        data = yaml.safe_load(meta.read_text(errors="replace"))
    except Exception:  # noqa: BLE001 - YAMLError, RecursionError...: no names, folders instead
        return {}
    names = {}
    for sub_id, info in data.items() if isinstance(data, dict) else []:
        people = info.get(":submitters") if isinstance(info, dict) else None
        ids = [str(p.get(":sid") or p.get(":email") or p.get(":name") or "")
               for p in (people if isinstance(people, list) else []) if isinstance(p, dict)]
        if any(ids):
            names[str(sub_id)] = "+".join(i for i in ids if i)
    return names


def _unique(found: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Ids made unique, ignoring case (a case-insensitive disk would merge their folders):
    the same id twice (two files of one student) keeps both, numbered `#2`, `#3`."""
    used: set[str] = set()
    unique = []
    for sid, f in found:
        candidate, n = sid, 1
        while candidate.lower() in used:
            n += 1
            candidate = f"{sid}#{n}"
        used.add(candidate.lower())
        unique.append((candidate, f))
    return unique


def find_submissions(paths: list[Path]) -> list[tuple[str, Path]]:
    """(safe student id, file) for every submission under `paths`, in a stable order.

    Files named on the command line are taken as they are (reading refuses links);
    folders are searched for notebooks and zips that are regular files, never following
    a link. In a Gradescope export (`submission_metadata.yml` beside `submission_<n>/`
    folders) each folder is one submission named after its submitters; its notebook is
    preferred. Ids are made safe (`safe_student_id`) and unique.
    """
    found: list[tuple[str, Path]] = []
    for path in paths:
        if not path.is_dir():  # a file, or a link the reader will refuse
            if os.path.lexists(path):
                found.append((safe_student_id(path.stem), path))
            continue
        names = _gradescope_names(path)
        if names:
            for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink()):
                files = sorted(_search(sub), key=lambda f: f.suffix != ".ipynb")
                if files:
                    found.append((safe_student_id(names.get(sub.name, sub.name)), files[0]))
            continue
        for f in _search(path):
            found.append((safe_student_id("__".join(f.relative_to(path).with_suffix("").parts)), f))
    return _unique(found)


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
    """The stored report's key: grader version, file name (messages quote it) and content.

    Reads at most the size cap + 1 bytes, never through a link: a file that cannot be
    read that way gets a key of its name alone, and the grader reports it as bad input.
    """
    h = hashlib.sha256(version.encode() + b"\0" + path.name.encode(errors="replace") + b"\0")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return h.hexdigest()[:32]
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        h.update(f"{st.st_size}\0".encode())
        if stat.S_ISREG(st.st_mode):
            left = (cfg.MAX_SUBMISSION_MB << 20) + 1  # beyond that it is refused anyway
            while left > 0 and (block := f.read(min(left, 1 << 20))):
                h.update(block)
                left -= len(block)
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
_STARTED = None  # the pool's queue of task keys, put when a task starts


def _die_with_parent() -> None:
    """Ask the kernel to kill this worker when `coursekit grade` dies (kill -9)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


_REQUIRE: str | None = None  # --require-isolation, set before the workers fork
_SANDBOXES = 1  # how many workers share this machine's memory, set before they fork


def _load_grader(slot: int) -> None:
    global _GRADER
    from coursekit.engine import default_grader

    _GRADER = default_grader(slot=slot, require=_REQUIRE, sandboxes=_SANDBOXES)


def _init_worker(slots: "mp.Queue[int]", started: Any) -> None:
    global _STARTED
    _STARTED = started
    _die_with_parent()  # kill -9 of `coursekit grade` leaves no workers behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _load_grader(slots.get())


def _grade_one(path: str, report_path: str) -> str:
    report = _GRADER.grade_path(Path(path))
    _write_atomic(Path(report_path), encode(report))
    return report_path


def _task(key: str, path: str, report_path: str) -> str:
    # Said before grading, synchronously (SimpleQueue): if this worker dies, the parent
    # knows which submission it was grading.
    _STARTED.put(key)
    return _grade_one(path, report_path)


@dataclass(frozen=True)
class _Todo:
    sid: str
    path: Path
    key: str
    report_path: Path


def _run_pool(tasks: list[_Todo], jobs: int, bar) -> tuple[dict[str, str], list[_Todo], set[str]]:
    """Grade `tasks` in one pool of `jobs` workers.

    Returns the error message of each task that raised, the tasks left unfinished when a
    worker died (the pool is then broken), and the keys of the tasks that had started.
    """
    ctx = mp.get_context("fork")  # workers inherit torch; none has touched CUDA
    slots = ctx.Queue()
    for i in range(jobs):
        slots.put(i)
    started_queue = ctx.SimpleQueue()
    started: set[str] = set()
    errors: dict[str, str] = {}
    unfinished: list[_Todo] = []

    def drain() -> None:
        while not started_queue.empty():
            started.add(started_queue.get())

    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(slots, started_queue)) as pool:
        pending = {}
        for i, t in enumerate(tasks):
            try:
                pending[pool.submit(_task, t.key, str(t.path), str(t.report_path))] = t
            except BrokenProcessPool:
                unfinished += tasks[i:]
                break
        waiting = set(pending)
        while waiting:
            done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            for fut in done:
                exc = fut.exception()
                if isinstance(exc, BrokenProcessPool):
                    unfinished.append(pending[fut])
                    continue
                if exc is not None:  # the type only: the text may quote the submission
                    errors[pending[fut].key] = (f"grading failed with an internal error "
                                                f"({type(exc).__name__}); it is retried on the next run")
                bar.update(1)
            drain()
    drain()
    return errors, unfinished, started


def _grade_batch(todo: list[_Todo], jobs: int, bar) -> dict[str, str]:
    """Grade every task; one submission never stops the others.

    A task that raises gets an error message. When a worker dies the pool breaks: tasks
    that had not started go into a fresh pool, and those that were running are graded
    again one per pool, so that only the one that kills its worker alone gets an error.
    """
    errors: dict[str, str] = {}
    queue, alone = list(todo), []
    idle_pools = 0
    while queue or alone:
        if alone:
            batch, width = [alone.pop(0)], 1
        else:
            batch, queue = queue, []
            width = min(jobs, len(batch))
        failed, unfinished, started = _run_pool(batch, width, bar)
        errors.update(failed)
        progress = bool(started) or len(unfinished) < len(batch)
        idle_pools = 0 if progress else idle_pools + 1
        if idle_pools >= 3:  # workers die before grading anything: the grader is broken
            raise RuntimeError("the grading workers stopped before grading anything "
                               "(see the messages above)")
        for t in unfinished:
            if t.key not in started:
                queue.append(t)
            elif width == 1:  # it was the only submission being graded: it killed the worker
                errors[t.key] = WORKER_DIED
                bar.update(1)
            else:
                alone.append(t)
    return errors


# --- outputs -------------------------------------------------------------------------

_MD_ESCAPES = str.maketrans({"\\": "\\\\", "`": "\\`", "|": "\\|", "*": "\\*", "[": "\\[",
                             "]": "\\]", "<": "&lt;", ">": "&gt;", "&": "&amp;"})


def _md_text(text: object) -> str:
    """Student-derived text for one Markdown line or table cell: no HTML, no Markdown
    markup, no line breaks (each run of control characters becomes one space)."""
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", str(text)).translate(_MD_ESCAPES)


def _csv_text(text: object) -> str:
    """A text cell no spreadsheet runs as a formula: a leading = + - @ tab or CR gets a '."""
    text = str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def markdown_report(student: str, report) -> str:
    """A readable per-student report; student-derived text is escaped."""
    lines = [f"# {cfg.ASSIGNMENT_TITLE}: {_md_text(student)}", "",
             f"**Score: {report.total:g} / {POSSIBLE:g}** (autograded part; written answers are graded by hand)", ""]
    if report.status != "ok" or report.message:
        lines += [f"> {_md_text(report.status)}: {_md_text(report.message)}", ""]
    lines += ["| question | score | what failed |", "|---|---|---|"]
    feedback = report.feedback()
    for q in QUESTIONS:
        failed = "<br>".join(_md_text(line) for line in feedback[q]) or "all checks passed"
        lines.append(f"| {q} | {report.scores[q]:g} / {cfg.AUTOGRADED_POINTS[q]:g} | {failed} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[tuple[str, object]], path: Path) -> None:
    """grades.csv, atomically: student, one column per question, total, status,
    isolation (the sandbox level that graded it), device (where the training check ran),
    message. Text cells are formula-safe."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", *QUESTIONS, "total", "status", "isolation", "device", "message"])
    for student, r in rows:
        writer.writerow([_csv_text(student), *(f"{r.scores[q]:g}" for q in QUESTIONS), f"{r.total:g}",
                         _csv_text(r.status), _csv_text(getattr(r, "isolation", "")),
                         _csv_text(getattr(r, "device", "")), _csv_text(r.message)])
    _write_atomic(path, buf.getvalue())


def score_bins(totals: list[float], possible: float, step: float = 0.5) -> tuple[list[float], list[int]]:
    """Histogram bins centred on each multiple of `step` from 0 to `possible`: (centres,
    counts). A score counts in the bin of the nearest multiple (11.5 in 11.5, not 12)."""
    n = int(round(possible / step))
    counts = [0] * (n + 1)
    for total in totals:
        counts[min(max(int(round(total / step)), 0), n)] += 1
    return [i * step for i in range(n + 1)], counts


def plot_score_histogram(totals: list[float], possible: float, path: Path) -> dict[str, list]:
    """Draw the class's score histogram (half-point bins, whole submissions on the count
    axis) into `path`; return what was drawn: bin centres, bar heights, count ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    centres, counts = score_bins(totals, possible)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bars = ax.bar(centres, counts, width=0.45, color="#4C72B0", edgecolor="white")
    ax.set_xlim(-0.5, possible + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"autograded score (of {possible:g})")
    ax.set_ylabel("submissions")
    ax.set_title(f"{cfg.ASSIGNMENT_TITLE}: scores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    low, high = ax.get_ylim()
    drawn = {"centres": [float(b.get_x() + b.get_width() / 2) for b in bars],
             "heights": [int(b.get_height()) for b in bars],
             "count_ticks": [float(t) for t in ax.get_yticks() if low <= t <= high]}
    plt.close(fig)
    return drawn


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
    levels: dict[str, int] = {}
    for _, r in rows:
        level = getattr(r, "isolation", "") or "not run"
        levels[level] = levels.get(level, 0) + 1
    lines.append("isolation: " + ", ".join(f"{k} {v}" for k, v in sorted(levels.items())))
    devices: dict[str, int] = {}
    for _, r in rows:
        device = getattr(r, "device", "") or "not trained"
        devices[device] = devices.get(device, 0) + 1
    lines.append("training check on: " + ", ".join(f"{k} {v}" for k, v in sorted(devices.items())))

    plot_score_histogram(totals, POSSIBLE, out_dir / "score_histogram.png")
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

def _stored(path: Path) -> Report | None:
    """The stored report, or None when missing, unreadable or malformed (`decode`)."""
    try:
        with path.open("rb") as f:
            return decode(f.read(MAX_REPORT_BYTES + 1))
    except (OSError, ReportError):
        return None


def grade_all(paths: list[Path], out_dir: Path, jobs: int | None = None,
              progress: bool = True, require: str | None = None,
              cluster: str | None = None) -> list[tuple[str, object]]:
    """Grade every submission under `paths` into `out_dir`; resumes an interrupted run.

    `require`: the weakest sandbox level allowed (a worker whose sandbox is weaker
    refuses to grade; `coursekit grade` checks it once before starting).
    `cluster`: a Dask scheduler's address (`tcp://HOST:PORT`): its workers grade instead
    of local ones, and `jobs` is ignored (`coursekit.cluster`; raises its ClusterError
    when the cluster cannot grade).

    One submission never stops the batch: if grading it raises or kills its worker, its
    row has status `error` (not stored, so the next run tries again) and the others are
    graded. A stored report that cannot be read or is malformed is graded again.
    """
    from tqdm import tqdm

    global _REQUIRE
    _REQUIRE = require
    cfg.results_visibility()  # a wrong setting fails now, not after grading the class
    out_dir.mkdir(parents=True, exist_ok=True)
    version = grader_version()
    subs = find_submissions(paths)
    report_dir = out_dir / ".reports"
    keys: dict[str, str] = {}
    data: dict[str, Report] = {}
    todo: dict[str, _Todo] = {}  # by key: identical files are graded once
    for sid, path in subs:
        key = keys[sid] = content_key(path, version)
        if key in data or key in todo:
            continue
        stored = _stored(report_dir / f"{key}.json")
        # "error" is the grader's failure (its sandbox did not start...), not a grade: retried
        if stored is None or stored.status == "error":
            todo[key] = _Todo(sid, path, key, report_dir / f"{key}.json")
        else:
            data[key] = stored
    errors: dict[str, str] = {}
    if todo:
        report_dir.mkdir(parents=True, exist_ok=True)
        jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
        global _SANDBOXES
        _SANDBOXES = jobs
        bar = tqdm(total=len(subs), initial=len(subs) - len(todo), unit="submission",
                   disable=not progress, desc="grading")
        if cluster:
            from coursekit.cluster import grade_on_cluster

            try:
                errors = grade_on_cluster(list(todo.values()), cluster, bar, require=require)
            finally:
                bar.close()  # an error message starts on a line of its own
        else:
            errors = _grade_batch(list(todo.values()), jobs, bar)
        bar.close()
    reports = dict(data)
    for key in todo:
        stored = None if key in errors else _stored(todo[key].report_path)
        reports[key] = stored or all_failed(
            "error", errors.get(key, "the grader wrote no readable report; it is retried on the next run"))
    rows = [(sid, reports[keys[sid]]) for sid, _ in subs]
    for sid, report in rows:
        fb = out_dir / "feedback" / sid  # a safe id: one plain folder name
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
