"""What `nbgrader autograde` takes from a student's submitted folder besides the notebook:
no link is ever followed.

Stops: a link among the other files of `submitted/<student>/<assignment>/` (to the
instructor's source notebook, relative or absolute, in a subfolder, to a folder, or
dangling), another file that is not a regular file there (a FIFO), a submitted folder that
is itself a link, and a bad `timestamp.txt` (garbage, huge, a link, a FIFO; read by
`coursekit.nbgrader_timestamp`). Stock nbgrader copies the folder's other files into
`autograded/<student>/<assignment>/` with `shutil.copy`, which follows links, and
`nbgrader generate_feedback` copies them on into the student's feedback folder: the student
gets the instructor's files back (the source notebook, model answers and hidden tests). A
dangling link, a FIFO or a bad timestamp fails that student instead (the run exits 1), and
a linked folder has the instructor's notebook graded as the student's.

How: `FolderCheckedExporter` is `Autograde.exporter_class` (`coursekit.nbgrader_plugin.
configure`). nbgrader makes it once per run, as a child of the converter, after finding the
students' folders and before copying anything. It then, for every folder of the run:

- lists it without following links (`examine`); each link or non-regular file (anywhere
  below, except the graded notebooks, which `coursekit.nbgrader_read` refuses itself) goes
  into the converter's `CourseDirectory.ignore` by its exact path: nbgrader's own list of
  files it does not copy. A folder that is a link, or cannot be listed, has all its files
  ignored, and its notebook is refused unread;
- reads its timestamp.txt with `read_timestamp`; a file that is not a valid time is ignored
  (never copied on), and the time counts as missing. nbgrader has no hook for its timestamp
  reader, so the run's CourseDirectory gets `get_existing_timestamp` replaced by
  `existing_timestamp`, which reads the same careful way: the one change made outside
  nbgrader's configuration;
- when nbgrader reads the folder's notebook, puts one line on what was left out into the
  converter's resources (the student cannot write them), which `RebuildFromCourse` puts in
  the student's note, at the top of the graded notebook and feedback.

`nbgrader generate_feedback` copies from `autograded/`, which then holds no link, and
`nbgrader export` reads only the gradebook.
"""

from __future__ import annotations

import datetime
import functools
import glob
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from nbgrader.converters import Autograde
from nbgrader.coursedir import CourseDirectory
from nbgrader.utils import full_split

from coursekit.nbgrader_read import RESOURCE_KEY, SafeNotebookExporter
from coursekit.nbgrader_timestamp import NAME as TIMESTAMP, read_timestamp, timestamp_line
from coursekit.submission import quote

MAX_ENTRIES = 10_000  # entries listed per folder; more and none of its files is copied
MAX_NAMED = 5  # file names in the note; the rest are counted
_BASE_IGNORE = "_coursekit_ignore_base"  # the TA's own ignore list, kept on the CourseDirectory


class FolderUnreadable(Exception):
    """The folder cannot be listed (or has too many entries) to tell what is safe to copy."""


@dataclass
class Folder:
    """What a student's submitted folder holds besides regular files, as found at start."""

    linked: bool = False  # the folder (or its student folder) is a link
    unlisted: str = ""  # why it could not be listed ('' when it was)
    odd: list[tuple[str, str]] = field(default_factory=list)  # (relative path, what it is)
    time: datetime.datetime | None = None
    time_reason: str | None = None

    def lines(self) -> list[str]:
        """The note's lines about this folder (none when nothing was left out)."""
        out = []
        if self.unlisted:
            out.append(f"the other files of your folder could not be checked ({self.unlisted}), "
                       "so none of them was copied for grading or feedback.")
        if self.odd:
            out.append(odd_line(self.odd))
        if self.time_reason:
            out.append(timestamp_line(self.time_reason))
        return out


def odd_line(odd: list[tuple[str, str]]) -> str:
    """One line naming the files that were not copied, and what each is."""
    named = ", ".join(f"{quote(rel, 60)} ({what})" for rel, what in odd[:MAX_NAMED])
    more = f" and {len(odd) - MAX_NAMED} more" if len(odd) > MAX_NAMED else ""
    verb = "file of your folder was" if len(odd) == 1 else "files of your folder were"
    return f"{len(odd)} {verb} not copied for grading or feedback: {named}{more}."


def examine(folder: str, skip: set[str]) -> list[tuple[str, str]]:
    """Every link and non-regular file below `folder` (relative paths, sorted, with 'a link'
    or 'not a regular file'), listed without following any link; paths in `skip` (absolute,
    as nbgrader names them) are left out. Raises FolderUnreadable."""
    odd: list[tuple[str, str]] = []
    todo, seen = [""], 0
    while todo:
        rel = todo.pop()
        try:
            with os.scandir(os.path.join(folder, rel) if rel else folder) as entries:
                for entry in entries:
                    seen += 1
                    if seen > MAX_ENTRIES:
                        raise FolderUnreadable(f"more than {MAX_ENTRIES} files")
                    path = os.path.join(rel, entry.name) if rel else entry.name
                    if entry.is_dir(follow_symlinks=False):  # a real folder, even one in skip
                        todo.append(path)
                    elif os.path.join(folder, path) in skip:
                        continue  # reported by its own reader
                    elif entry.is_symlink():  # never followed, whatever it points to
                        odd.append((path, "a link"))
                    elif not entry.is_file(follow_symlinks=False):
                        odd.append((path, "not a regular file"))
        except OSError as exc:
            raise FolderUnreadable(exc.strerror or type(exc).__name__) from None
    return sorted(odd)


def is_linked(folder: str, root: str, structure: str) -> bool:
    """Whether `folder` (root/structure formatted) or a folder of it named after the
    student or the assignment is a link; the course's own folders (root, `submitted`) may
    be links a TA made."""
    parts = full_split(structure)
    rel = os.path.relpath(folder, root).split(os.sep)
    if len(parts) != len(rel) or rel[0] == os.pardir:  # an unusual layout: every part
        parts = ("{student_id}",) * len(rel)
    for i, part in enumerate(parts):
        if ("{student_id}" in part or "{assignment_id}" in part) and os.path.islink(
                os.path.join(root, *rel[:i + 1])):
            return True
    return False


def _everything(folder: str) -> list[str]:
    """Ignore patterns for every file of `folder` (glob's '*' skips names with a dot)."""
    return [os.path.join(glob.escape(folder), "*"), os.path.join(glob.escape(folder), ".*")]


def existing_timestamp(coursedir: CourseDirectory, log: logging.Logger,
                       folder: str) -> datetime.datetime | None:
    """`CourseDirectory.get_existing_timestamp` made safe: `folder`'s timestamp.txt read by
    `read_timestamp` (a bad one is no timestamp, logged), none through a linked folder.
    Read afresh at every call, as nbgrader does (the formgrader's collect calls it too)."""
    if is_linked(folder, coursedir.root, coursedir.directory_structure):
        return None
    when, reason = read_timestamp(folder)
    if reason:
        log.warning("coursekit: %s %s: taken as no timestamp",
                    os.path.join(folder, TIMESTAMP), reason)
    return when


class FolderCheckedExporter(SafeNotebookExporter):
    """nbgrader's exporter for `nbgrader autograde` that, made at the start of the run,
    keeps every link of the students' folders out of what nbgrader copies and reads (see
    the module docstring)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._folders: dict[str, Folder] = {}
        if isinstance(self.parent, Autograde) and self.parent.coursedir is not None:
            self._check_folders(self.parent)

    def _check_folders(self, converter: Autograde) -> None:
        """Examine every folder the run will grade, before nbgrader copies any of it."""
        coursedir = converter.coursedir
        patterns: list[str] = []
        for folder, notebooks in converter.assignments.items():
            found = Folder()
            self._folders[os.path.normpath(folder)] = found
            if is_linked(folder, coursedir.root, coursedir.directory_structure):
                found.linked = True
                patterns += _everything(folder)
                continue
            try:
                found.odd = examine(folder, {*notebooks, os.path.join(folder, TIMESTAMP)})
            except FolderUnreadable as exc:
                found.unlisted = str(exc)
                patterns += _everything(folder)
                continue
            patterns += [glob.escape(os.path.join(folder, rel)) for rel, _ in found.odd]
            found.time, found.time_reason = read_timestamp(folder)
            if found.time_reason:  # never copied on (generate_feedback reads it again)
                patterns.append(glob.escape(os.path.join(folder, TIMESTAMP)))
        # nbgrader adds "*.ipynb" itself; a previous run's patterns (the formgrader keeps its
        # CourseDirectory) are dropped
        if not hasattr(coursedir, _BASE_IGNORE):
            setattr(coursedir, _BASE_IGNORE, list(coursedir.ignore))
        coursedir.ignore = getattr(coursedir, _BASE_IGNORE) + patterns
        coursedir.get_existing_timestamp = functools.partial(
            existing_timestamp, coursedir, self.log)

    def from_filename(self, filename: str, resources: dict | None = None,
                      **kw: Any) -> tuple[str, dict]:
        """Read the submitted notebook (as SafeNotebookExporter does), with this folder's
        lines for the student's note in `resources['coursekit']['notes']`; a linked
        folder's notebook is refused unread."""
        if resources is None:
            resources = {}
        found = self._folders.get(os.path.normpath(os.path.dirname(filename)))
        if found is not None:  # nbgrader's first pass, on the submitted folder
            entry = resources.setdefault(RESOURCE_KEY, {})
            entry["notes"] = found.lines()
            if found.linked:
                entry["unreadable"] = "the submitted folder is a link"
        return super().from_filename(filename, resources=resources, **kw)
