"""Reading a submission: a notebook or an otter export zip, parsed strictly, never run.

Everything here is hostile input: the file is opened without following links, sizes are
bounded before anything is read or decompressed, the notebook is parsed as JSON (never
unpickled) and checked cell by cell, and anything malformed becomes a `SubmissionError`
whose one-line message names the file and what is wrong. No other exception leaves
`read_submission` or `check_submission_file`.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import nbformat

from coursekit.safe_read import FileRefused, open_regular


MAX_ZIP_MEMBERS = 10_000  # an otter export holds a handful; a zip of a whole folder, hundreds
MAX_ZIP_DIRECTORY_BYTES = MAX_ZIP_MEMBERS * 512  # bounds the entries zipfile parses at all
MAX_JSON_DEPTH = 100  # real notebooks nest about 10 deep; outputs with plots a few more
MAX_QUOTED_CHARS = 60  # student-controlled text quoted in a message


class SubmissionError(Exception):
    """The submission cannot be graded; the message says why, for the student and the TA."""


def quote(text: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """Student-controlled text made safe for a one-line message: every control or other
    non-printable character (newlines, escapes, bidi overrides) becomes '?', and the text
    is cut to `limit` characters."""
    text = str(text)
    short = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return short + "…" if len(text) > limit else short


@dataclass(frozen=True)
class Rules:
    """What a submission must be, from the course's settings: at most `max_mb`, a notebook of
    `assignment` where it names one (None: any), cells tagged `ignore_tag` not run."""

    max_mb: int = 50
    assignment: str | None = None
    ignore_tag: str = "otter_ignore"

    @property
    def limit_bytes(self) -> int:
        return self.max_mb << 20


def _too_large(name: str, rules: Rules) -> SubmissionError:
    return SubmissionError(f"{name} is larger than {rules.max_mb} MB")


# --- bytes: the file, or the notebook inside a zip ------------------------------------------

def _open_regular(path: Path, name: str) -> IO[bytes]:
    """The file opened for reading (`safe_read.open_regular`: no link, a regular file, no
    wait on a FIFO); SubmissionError naming it otherwise."""
    try:
        return open_regular(path)
    except FileRefused as exc:
        raise SubmissionError(f"{name} {exc.why}") from None


def _unsafe_member_name(member: str) -> bool:
    """An absolute path or one with '..' (we never extract; such names only mislead)."""
    parts = member.replace("\\", "/")
    return parts.startswith("/") or re.match(r"[A-Za-z]:", parts) is not None or ".." in parts.split("/")


def _zip_directory_too_large(f: IO[bytes]) -> bool:
    """Whether the zip's end record announces more members (or a larger directory) than
    we examine, read before zipfile builds one object per member."""
    try:
        end = zipfile._EndRecData(f)  # the parser ZipFile itself uses, so both agree
    except Exception:  # noqa: BLE001 - a damaged end record is reported by ZipFile below
        return False
    if not end:
        return False
    return end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ZIP_MEMBERS or end[zipfile._ECD_SIZE] > MAX_ZIP_DIRECTORY_BYTES


def _zip_notebook(f: IO[bytes], name: str, rules: Rules) -> tuple[bytes, str]:
    """The one notebook in a zip, read with bounded decompression, and its display name."""
    if _zip_directory_too_large(f):
        raise SubmissionError(f"{name} holds more than {MAX_ZIP_MEMBERS} files")
    limit = rules.limit_bytes
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise SubmissionError(f"{name} holds more than {MAX_ZIP_MEMBERS} files")
            for info in infos:
                if _unsafe_member_name(info.filename):
                    raise SubmissionError(f"{name} holds a file with an unsafe path ({quote(info.filename)})")
            nbs = [i for i in infos if i.filename.endswith(".ipynb") and not i.is_dir()
                   and not i.filename.startswith("__MACOSX/") and ".ipynb_checkpoints" not in i.filename]
            if not nbs:
                raise SubmissionError(f"{name} is a zip without a notebook (.ipynb) in it")
            if len(nbs) > 1:
                names = ", ".join(quote(i.filename, 40) for i in nbs[:2])
                raise SubmissionError(f"{name} holds more than one notebook ({names})")
            info = nbs[0]
            label = f"{name}:{quote(info.filename)}"
            if info.flag_bits & 0x1:
                raise SubmissionError(f"{name} is an encrypted zip; upload it without a password")
            if info.file_size > limit:
                raise SubmissionError(f"{name}: the notebook in it is larger than {rules.max_mb} MB")
            # Never more than the header's size + 1 (itself within the cap): a header that
            # lies about a larger member ends in a CRC error, not a decompressed bomb.
            with zf.open(info) as member:
                data = member.read(info.file_size + 1)
    except SubmissionError:
        raise
    except Exception:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, unsupported methods...
        raise SubmissionError(f"{name} is a damaged zip file") from None
    if len(data) > info.file_size:
        raise SubmissionError(f"{name} is a damaged zip file")
    return data, label


def _submission_bytes(path: Path, rules: Rules) -> tuple[bytes, str]:
    """The notebook's bytes (the file, or the notebook in a zip) and the name to show."""
    name = quote(path.name)
    limit = rules.limit_bytes
    with _open_regular(path, name) as f:
        if os.fstat(f.fileno()).st_size > limit:
            raise _too_large(name, rules)
        if zipfile.is_zipfile(f):  # reads only the end record
            f.seek(0)
            return _zip_notebook(f, name, rules)
        f.seek(0)
        data = f.read(limit + 1)  # bounded even if the file grew after fstat
    if len(data) > limit:
        raise _too_large(name, rules)
    return data, name


def check_submission_file(path: Path, rules: Rules = Rules()) -> None:
    """Raise SubmissionError if the file cannot be graded for what it is as bytes: a link,
    not a regular file, larger than `rules.max_mb`, a damaged zip, or a zip whose notebook
    is over that cap (measured by bounded reading, never by trusting the header). The
    notebook's JSON is not parsed here (`read_submission` does that)."""
    try:
        _submission_bytes(path, rules)
    except SubmissionError:
        raise
    except Exception as exc:  # noqa: BLE001 - no exception but ours leaves this module
        raise SubmissionError(_unexpected(path, exc)) from None


def _unexpected(path: Path, exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{quote(path.name)} cannot be read ({exc.strerror})"
    return f"{quote(path.name)} cannot be read as a notebook"


# --- the notebook ---------------------------------------------------------------------

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _nesting_exceeds(text: str, limit: int) -> bool:
    """Whether the JSON's containers nest deeper than `limit`, from the text: strings
    removed (linear: only called on text json.loads accepted, so every string ends),
    then the running count of brackets, in C-speed steps (a 50 MB file takes < 1 s)."""
    import numpy as np

    skeleton = _JSON_STRING.sub("", text).encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)
    step = np.zeros(256, np.int32)
    step[[ord("["), ord("{")]] = 1
    step[[ord("]"), ord("}")]] = -1
    level, chunk = 0, 1 << 22
    for start in range(0, len(skeleton), chunk):
        view = np.frombuffer(skeleton, np.uint8, count=min(chunk, len(skeleton) - start), offset=start)
        running = np.cumsum(step[view]) + level
        if running.max() > limit:
            return True
        level = int(running[-1])
    return False


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(s, str) for s in value))


def _cell_problem(cell: Any) -> str | None:
    """What is wrong with one cell as the grader reads it, or None."""
    if not isinstance(cell, dict):
        return "is not an object"
    if not isinstance(cell.get("cell_type"), str):
        return "has no cell type"
    if "source" not in cell:
        return "has no source"
    if not _is_text(cell["source"]):
        return "has a source that is not text"
    meta = cell.get("metadata", {})
    if not isinstance(meta, dict):
        return "has metadata that is not an object"
    tags = meta.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return "has tags that are not a list of strings"
    if "outputs" in cell and not isinstance(cell["outputs"], list):
        return "has outputs that are not a list"
    return None


def _check_cells(nb: Any, name: str) -> None:
    """Raise SubmissionError unless every cell is one the grader can read."""
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise SubmissionError(f"{name} is a damaged notebook (its cells are not a list)")
    for i, cell in enumerate(cells, 1):
        problem = _cell_problem(cell)
        if problem:
            raise SubmissionError(f"{name} is a damaged notebook (cell {i} {problem})")


def _check_structure(raw: dict, name: str) -> None:
    """The notebook-level fields the grader uses, checked before nbformat sees them."""
    if not isinstance(raw.get("metadata", {}), dict):
        raise SubmissionError(f"{name} is a damaged notebook (its metadata is not an object)")
    _check_cells(raw, name)


def _read_notebook_text(text: str, name: str, rules: Rules) -> nbformat.NotebookNode:
    """Parse notebook text strictly; `name` (already quoted) names it in messages."""
    if not text.strip():
        raise SubmissionError(f"{name} is empty")
    try:
        raw = json.loads(text)
    except RecursionError:  # the C parser stops at the recursion limit, fast
        raise SubmissionError(f"{name} is not a notebook: its JSON is nested too deeply") from None
    except MemoryError:
        raise SubmissionError(f"{name} is not a notebook: too large to read") from None
    except ValueError as exc:
        raise SubmissionError(f"{name} is not a notebook: invalid JSON ({quote(exc, 80)})") from None
    if _nesting_exceeds(text, MAX_JSON_DEPTH):  # nbformat's validation and NotebookNode recurse
        raise SubmissionError(f"{name} is not a notebook: its JSON is nested too deeply")
    if not isinstance(raw, dict) or "cells" not in raw:
        raise SubmissionError(f"{name} is not a Jupyter notebook (no cells)")
    major = raw.get("nbformat")
    if type(major) is not int or major != 4:
        raise SubmissionError(f"{name} uses notebook format {quote(repr(major), 20)}; save it as format 4 "
                              "(any current Jupyter or Colab does)")
    _check_structure(raw, name)
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception:  # noqa: BLE001 - whatever nbformat trips on is a damaged notebook
        raise SubmissionError(f"{name} is a damaged notebook (its cells cannot be read)") from None
    _check_cells(nb, name)
    otter = nb.metadata.get("otter")
    assignment = otter.get("assignment_name") if isinstance(otter, dict) else None
    if assignment is not None and rules.assignment is not None and assignment != rules.assignment:
        raise SubmissionError(f"{name} is a notebook of assignment '{quote(assignment)}', "
                              f"not '{rules.assignment}'")
    return nb


def read_submission(path: Path, rules: Rules = Rules()) -> nbformat.NotebookNode:
    """The submission's notebook, from a .ipynb or an otter export zip. Never unpickles,
    never follows a link; anything that is not a gradable notebook raises SubmissionError
    (and nothing else)."""
    try:
        data, name = _submission_bytes(path, rules)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SubmissionError(f"{name} is not a notebook: not UTF-8 text") from None
        return _read_notebook_text(text, name, rules)
    except SubmissionError:
        raise
    except Exception as exc:  # noqa: BLE001 - one submission's file never crashes the grader
        raise SubmissionError(_unexpected(path, exc)) from None


def gradable_cells(nb: nbformat.NotebookNode, name: str = "the submission",
                   ignore_tag: str = Rules.ignore_tag) -> list[str]:
    """The code cells the grader runs: not tagged `ignore_tag`, not otter's own cells.

    The notebook may come from elsewhere than `read_submission` (the otter plugin gets
    otter's), so its cells are checked again: a damaged one raises SubmissionError.
    """
    _check_cells(nb, name)
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        if ignore_tag in cell.get("metadata", {}).get("tags", []):
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        code = [ln.strip() for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        if ("otter.Notebook(" in src or "LabNotebook(" in src
                or (code and all(ln.startswith("grader.") for ln in code))):
            continue  # the set-up (otter's init) cell, the check, check_all and export cells
        cells.append(src)
    return cells
