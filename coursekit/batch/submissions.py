"""Finding a class's submissions and naming them: every notebook or zip under the paths
given (never through a link), one safe, unique student id each (from the file's path, or
from a Gradescope export's submission_metadata.yml)."""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path

SUFFIXES = (".ipynb", ".zip")
MAX_ID_CHARS = 100
MAX_SEARCH_DEPTH = 20  # a Gradescope export is 2 deep; deeper trees are not submissions
MAX_METADATA_BYTES = 16 << 20
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


def gradescope_names(folder: Path) -> dict[str, str]:
    """Raw student names by submission folder, from a Gradescope export's
    submission_metadata.yml (hostile text: `find_submissions` makes them safe ids);
    empty where `folder` is no such export or its metadata cannot be read."""
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
        names = gradescope_names(path)
        if names:
            for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink()):
                files = sorted(_search(sub), key=lambda f: f.suffix != ".ipynb")
                if files:
                    found.append((safe_student_id(names.get(sub.name, sub.name)), files[0]))
            continue
        for f in _search(path):
            found.append((safe_student_id("__".join(f.relative_to(path).with_suffix("").parts)), f))
    return _unique(found)
