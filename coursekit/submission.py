"""Reading a submission: a notebook or an otter export zip, parsed strictly, never run.

Everything here is hostile input: sizes are bounded before anything is read or
decompressed, the notebook is parsed as JSON (never unpickled), and anything malformed
becomes a `SubmissionError` whose message names the file and what is wrong.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nbformat

import course_config as cfg


class SubmissionError(Exception):
    """The submission cannot be graded; the message says why, for the student and the TA."""


def _read_notebook_text(text: str, name: str) -> nbformat.NotebookNode:
    if not text.strip():
        raise SubmissionError(f"{name} is empty")
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise SubmissionError(f"{name} is not a notebook: invalid JSON ({exc.args[0][:80]})") from None
    if not isinstance(raw, dict) or "cells" not in raw:
        raise SubmissionError(f"{name} is not a Jupyter notebook (no cells)")
    major = raw.get("nbformat")
    if major != 4:
        raise SubmissionError(f"{name} uses notebook format {major!r}; save it as format 4 "
                              "(any current Jupyter or Colab does)")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception:
        raise SubmissionError(f"{name} is a damaged notebook (its cells cannot be read)") from None
    if not isinstance(nb.cells, list) or any(not isinstance(c.get("source", ""), str) for c in nb.cells):
        raise SubmissionError(f"{name} is a damaged notebook (its cells cannot be read)")
    assignment = nb.metadata.get("otter", {}).get("assignment_name") if isinstance(
        nb.metadata.get("otter"), dict) else None
    if assignment is not None and assignment != cfg.ASSIGNMENT:
        raise SubmissionError(f"{name} is a notebook of assignment '{str(assignment)[:40]}', "
                              f"not '{cfg.ASSIGNMENT}'")
    return nb


def read_submission(path: Path) -> nbformat.NotebookNode:
    """The submission's notebook, from a .ipynb or an otter export zip. Never unpickles."""
    name = path.name
    if not path.is_file():
        raise SubmissionError(f"{name} is not a file")
    if path.stat().st_size > cfg.MAX_SUBMISSION_MB << 20:
        raise SubmissionError(f"{name} is larger than {cfg.MAX_SUBMISSION_MB} MB")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                nbs = [i for i in zf.infolist() if i.filename.endswith(".ipynb")
                       and not i.filename.startswith("__MACOSX/")
                       and ".ipynb_checkpoints" not in i.filename]
                if not nbs:
                    raise SubmissionError(f"{name} is a zip without a notebook (.ipynb) in it")
                if len(nbs) > 1:
                    names = ", ".join(i.filename for i in nbs[:3])
                    raise SubmissionError(f"{name} holds more than one notebook ({names})")
                if nbs[0].file_size > cfg.MAX_SUBMISSION_MB << 20:
                    raise SubmissionError(f"{name}: the notebook in it is larger than "
                                          f"{cfg.MAX_SUBMISSION_MB} MB")
                data = zf.read(nbs[0])
        except zipfile.BadZipFile:
            raise SubmissionError(f"{name} is a damaged zip file") from None
        return _read_notebook_text(data.decode("utf-8", "replace"), f"{name}:{nbs[0].filename}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SubmissionError(f"{name} is not a notebook: not UTF-8 text") from None
    return _read_notebook_text(text, name)


def gradable_cells(nb: nbformat.NotebookNode) -> list[str]:
    """The code cells the grader runs: not tagged otter_ignore, not otter's own cells."""
    cells = []
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", []) or []
        if cfg.IGNORE_TAG in tags:
            continue
        src = cell.source
        code = [ln.strip() for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        if "otter.Notebook(" in src or (code and all(ln.startswith("grader.") for ln in code)):
            continue  # otter's init, check, check_all and export cells
        cells.append(src)
    return cells


