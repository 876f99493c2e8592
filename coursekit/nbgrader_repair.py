"""The first step of `nbgrader autograde`: rebuild each submission from the course's cells.

Stops: a submission whose cells or nbgrader metadata stop nbgrader, or change what it
scores — duplicated grade ids (stock nbgrader blanks one copy's metadata, then its own
check takes the blank for "an old version of the nbgrader metadata format" and ends the
run for every student), old, new, missing or wrongly typed metadata, forged points, locks
or checksums, grade ids the assignment does not have, edited, retyped or deleted cells,
and a file that could not be read at all (`coursekit.nbgrader_read`).

`RebuildFromCourse` runs before nbgrader's sanitising steps (`Autograde.
sanitize_preprocessors`). It trusts nothing in the submission's metadata: every cell the
course owns comes from the gradebook (text, type, points, flags, checksum: what nbgrader's
`OverwriteCells` checks against) and the instructor's source notebook (tags), matched by
the grade_id the student's cell names:

- a read-only cell (given code and text, public and hidden checks): the course's cell, at
  the place of the last student cell naming it; other copies are dropped;
- an answer cell: the course's metadata and type around the student's text (the last copy
  naming it, as nbgrader keeps the last); earlier copies stay as the student's own cells;
- any other cell (no nbgrader metadata, or an id the course does not have): the student's
  own cell, with its tags and nothing else of its metadata;
- a graded cell (hidden check, written answer) no student cell names: added back after the
  course cell before it. Other missing cells are not: the student's code is graded as it is.

What it changed goes into the notebook's metadata (`coursekit`: the one line, after what
`coursekit.nbgrader_folder` left out of the student's folder, and the counts; the
student's own notebook metadata is dropped, so the student cannot write it), and
`coursekit.nbgrader_plugin.SandboxedGrading` puts the line at the top of the graded
notebook, where `nbgrader generate_feedback` shows it. After this step nbgrader's own
sanitising steps find nothing to change and nothing to reject.

Its size (~370 lines): one nbgrader preprocessor and the cell model it rebuilds from;
split, each half would need the other's private rules.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode
from nbformat.v4.nbbase import validate as validate_cell
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.nbgraderformat import SCHEMA_VERSION
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor
from traitlets import Unicode

from coursekit.nbgrader_read import folder_notes, unreadable_reason

NOTE_KEY = "coursekit"  # notebook metadata our steps write (the student's is dropped)
CELL_TYPES = ("code", "markdown", "raw")


@dataclass(frozen=True)
class CourseCell:
    """One cell of the assignment as nbgrader's gradebook holds it."""

    name: str
    cell_type: str
    source: str  # as the gradebook holds it: hidden tests included
    released: str  # as students got it: hidden tests removed
    checksum: str
    locked: bool
    grade: bool
    solution: bool
    task: bool
    points: float | None
    tags: tuple[str, ...]

    def nbgrader_metadata(self, checksum: str | None = None) -> dict[str, Any]:
        """The cell's nbgrader metadata (schema 3), with the gradebook's checksum."""
        meta: dict[str, Any] = {"grade": self.grade, "grade_id": self.name, "locked": self.locked,
                                "schema_version": SCHEMA_VERSION, "solution": self.solution,
                                "checksum": checksum or self.checksum, "cell_type": self.cell_type}
        if self.grade or self.task:
            meta["points"] = self.points
        if self.task:
            meta["task"] = True
        return meta

    def make(self, source: str | None = None) -> NotebookNode:
        """This cell for the graded notebook: the course's text, or `source` (an answer)."""
        text = self.source if source is None else source
        meta = {"nbgrader": self.nbgrader_metadata()}
        if self.tags:
            meta["tags"] = list(self.tags)
        return _new_cell(self.cell_type, text, meta, cell_id=_cell_id(self.name))


def _new_cell(cell_type: str, source: str, metadata: dict, cell_id: str) -> NotebookNode:
    maker = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
             "raw": nbformat.v4.new_raw_cell}[cell_type]
    cell = maker(source, metadata=metadata)
    cell["id"] = cell_id
    return cell


def _cell_id(name: str) -> str:
    """A valid nbformat cell id (letters, digits, '-', '_'; 1 to 64 characters)."""
    clean = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in name)
    return (clean or "cell")[:64]


def _text(value: Any) -> str:
    """A cell's source as one string (nbformat keeps it as a string or a list of lines)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return ""


def _claimed_id(cell: Any) -> str | None:
    """The grade_id a student cell names, if it is text (anything else names nothing)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    gid = nbg.get("grade_id") if isinstance(nbg, dict) else None
    return gid if isinstance(gid, str) else None


def _has_nbgrader_metadata(cell: Any) -> bool:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    return isinstance(meta, dict) and "nbgrader" in meta


def _same(value: Any, want: Any) -> bool:
    """JSON values equal with their types (True is not 1, "3" is not 3)."""
    if isinstance(want, float):
        return type(value) in (int, float) and float(value) == want
    return type(value) is type(want) and value == want


def metadata_changed(meta: Any, cell: CourseCell, released_checksum: str) -> bool:
    """Whether a student cell's nbgrader metadata differs from what the course released
    (the checksum and cell type may be absent, as in the instructor's own notebook)."""
    if not isinstance(meta, dict):
        return True
    want = cell.nbgrader_metadata()
    optional = {"checksum": (cell.checksum, released_checksum), "cell_type": (cell.cell_type,)}
    for key in set(want) | set(meta):
        if key in optional:
            if key in meta and meta[key] not in optional[key]:
                return True
        elif key not in want or key not in meta or not _same(meta[key], want[key]):
            return True
    return False


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


# What each kind of repair says, in the order of the note.
_SAYS = {
    "dropped copies": lambda n: f"{_plural(n, 'extra copy', 'extra copies')} of read-only cells "
                                f"{'was' if n == 1 else 'were'} removed",
    "answer copies": lambda n: f"{_plural(n, 'earlier copy', 'earlier copies')} of answer cells "
                               f"{'was' if n == 1 else 'were'} kept as your own cells "
                               "(the last copy is the graded answer)",
    "edited": lambda n: f"{_plural(n, 'edited read-only cell was', 'edited read-only cells were')} restored",
    "retyped": lambda n: f"{_plural(n, 'cell', 'cells')} whose type was changed "
                         f"{'was' if n == 1 else 'were'} changed back",
    "metadata": lambda n: f"the nbgrader metadata of {_plural(n, 'cell', 'cells')} was changed "
                          "and was replaced by the course's",
    "unknown": lambda n: f"{_plural(n, 'cell', 'cells')} named no cell of this assignment and "
                         f"{'was' if n == 1 else 'were'} kept as your own",
    "odd type": lambda n: f"{_plural(n, 'cell', 'cells')} of an unknown type "
                          f"{'was' if n == 1 else 'were'} kept as raw text",
    "missing graded": lambda n: f"{_plural(n, 'graded cell was', 'graded cells were')} missing and "
                                f"{'was' if n == 1 else 'were'} added back",
    "missing other": lambda n: f"{_plural(n, 'other cell', 'other cells')} of the assignment "
                               f"{'was' if n == 1 else 'were'} not found (your cells were graded as they are)",
}


def note_line(repairs: Counter) -> str:
    """The one line that tells the student what was repaired ('' when nothing was)."""
    parts = [say(repairs[kind]) for kind, say in _SAYS.items() if repairs[kind]]
    if not parts:
        return ""
    return ("your notebook was repaired before grading: " + "; ".join(parts)
            + ". Your score is for the repaired notebook.")


def unreadable_line(reason: str) -> str:
    """The line for a submission that could not be read."""
    return f"your notebook could not be read ({reason}), so nothing in it was graded: 0 points."


def join_lines(lines: list[str]) -> str:
    """The student's one-line note from its parts (each a sentence; empty ones dropped)."""
    parts = [line for line in lines if line]
    return " ".join(p[:1].upper() + p[1:] if i else p for i, p in enumerate(parts))


def rebuild(cells: list, course: list[CourseCell],
            released_checksums: dict[str, str]) -> tuple[list[NotebookNode], Counter]:
    """The graded notebook's cells from the student's `cells` and the `course`'s, and
    what was repaired (see the module docstring for the rules)."""
    by_name = {c.name: c for c in course}
    keeper: dict[str, int] = {}  # the last student cell naming each course cell
    for i, cell in enumerate(cells):
        name = _claimed_id(cell)
        if name in by_name:
            keeper[name] = i
    repairs: Counter = Counter()
    out: list[tuple[NotebookNode, str | None]] = []
    for i, cell in enumerate(cells):
        name = _claimed_id(cell)
        if name not in by_name:
            if _has_nbgrader_metadata(cell):
                repairs["unknown"] += 1
            out.append((_student_cell(cell, len(out), repairs), None))
            continue
        course_cell = by_name[name]
        if keeper[name] != i:  # an earlier copy of a course cell
            if course_cell.solution:
                repairs["answer copies"] += 1
                out.append((_student_cell(cell, len(out), repairs), None))
            else:
                repairs["dropped copies"] += 1
            continue
        source = _text(cell.get("source"))
        if cell.get("cell_type") != course_cell.cell_type:
            repairs["retyped"] += 1
        if metadata_changed(cell["metadata"]["nbgrader"], course_cell, released_checksums[name]):
            repairs["metadata"] += 1
        if course_cell.solution:
            out.append((course_cell.make(source), name))
        else:
            if source not in (course_cell.source, course_cell.released):
                repairs["edited"] += 1
            out.append((course_cell.make(), name))
    for k, course_cell in enumerate(course):
        if course_cell.name in keeper:
            continue
        if not (course_cell.grade or course_cell.task):
            repairs["missing other"] += 1
            continue
        repairs["missing graded"] += 1
        at = _insertion_point(out, [c.name for c in course[:k]])
        out.insert(at, (course_cell.make(), course_cell.name))
    return [cell for cell, _ in out], repairs


def _insertion_point(out: list[tuple[NotebookNode, str | None]], before: list[str]) -> int:
    """Where a missing course cell goes: after the nearest course cell before it that is
    in the notebook, else before the first course cell there, else at the end."""
    where = {name: i for i, (_, name) in enumerate(out) if name}
    for name in reversed(before):
        if name in where:
            return where[name] + 1
    return min(where.values()) if where else len(out)


def _student_cell(cell: Any, index: int, repairs: Counter) -> NotebookNode:
    """A cell of the student's own: its type and text, its tags, nothing else of its
    metadata (and a Markdown cell's attachments, if they are valid)."""
    meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
    tags = meta.get("tags")
    metadata = {"tags": list(tags)} if isinstance(tags, list) and tags and all(
        isinstance(t, str) for t in tags) else {}
    cell_type = cell.get("cell_type")
    if cell_type not in CELL_TYPES:
        repairs["odd type"] += 1
        cell_type = "raw"
    new = _new_cell(cell_type, _text(cell.get("source")), metadata, cell_id=f"student-{index}")
    attachments = cell.get("attachments")
    if cell_type == "markdown" and isinstance(attachments, dict) and attachments:
        new["attachments"] = copy.deepcopy(attachments)
        try:
            validate_cell(new, "markdown_cell")
        except Exception:  # noqa: BLE001 - invalid attachments are dropped, the text is kept
            del new["attachments"]
    return new


class RebuildFromCourse(NbGraderPreprocessor):
    """Rebuild the submission from the course's cells by grade_id (the first step of
    `nbgrader autograde`'s sanitising; see the module docstring)."""

    ignore_tag = Unicode("otter_ignore", help="The tag of cells the grader does not run "
                         "(course_config.IGNORE_TAG)").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Replace `nb`'s cells and metadata; the note goes into `nb.metadata.coursekit`."""
        info = resources["nbgrader"]
        course, instructor_meta = self._course(info["db_url"], info["assignment"], info["notebook"])
        released = {c.name: self._released_checksum(c) for c in course}
        reason = unreadable_reason(resources)
        if reason is None:
            cells, repairs = rebuild(list(nb.get("cells", [])), course, released)
            note = note_line(repairs)
        else:  # the course's notebook, as released: nothing of the student's is graded
            cells = [c.make() for c in course]
            note, repairs = unreadable_line(reason), Counter()
        note = join_lines([*folder_notes(resources), note])  # files left out, then the notebook
        seen: set[str] = set()
        for n, cell in enumerate(cells):  # cell ids unique, as nbformat 4.5 requires
            if cell["id"] in seen:
                cell["id"] = f"{cell['id'][:50]}-dup-{n}"
            seen.add(cell["id"])
        out = nbformat.v4.new_notebook(cells=cells, metadata=instructor_meta)
        if note:  # the record in the graded notebook: the line, and the counts for TAs
            out.metadata[NOTE_KEY] = {"note": note, "unreadable": reason is not None,
                                      "repairs": dict(repairs)}
            self.log.warning("coursekit: %s: %s", info["student"], note)
        return out, resources

    def _course(self, db_url: str, assignment: str,
                notebook: str) -> tuple[list[CourseCell], dict[str, Any]]:
        """The notebook's cells from the gradebook (in order), and the notebook metadata
        and cell tags from the instructor's source notebook."""
        source_nb = self._source_notebook(assignment, notebook)
        tags: dict[str, tuple[str, ...]] = {}
        for cell in (source_nb.cells if source_nb else []):
            gid = _claimed_id(cell)
            cell_tags = cell.get("metadata", {}).get("tags", [])
            if gid and isinstance(cell_tags, list):
                tags[gid] = tuple(t for t in cell_tags if isinstance(t, str))
        with Gradebook(db_url) as gb:
            nbrow = gb.find_notebook(notebook, assignment)
            points = {c.name: float(c.max_score) for c in nbrow.grade_cells}
            task_points = {c.name: float(c.max_score) for c in nbrow.task_cells}
            solutions = {c.name for c in nbrow.solution_cells}
            kernelspec = nbrow.kernelspec
            course = []
            for sc in nbrow.source_cells:
                grade, task, solution = sc.name in points, sc.name in task_points, sc.name in solutions
                cell_tags = tags.get(sc.name, ())
                if grade and not solution and sc.cell_type == "code" and self.ignore_tag not in cell_tags:
                    cell_tags += (self.ignore_tag,)  # a check is never run as student code
                course.append(CourseCell(
                    name=sc.name, cell_type=sc.cell_type, source=sc.source,
                    released=self._released_source(sc.source), checksum=sc.checksum,
                    locked=bool(sc.locked), grade=grade, solution=solution, task=task,
                    points=points.get(sc.name, task_points.get(sc.name)), tags=cell_tags))
        meta = dict(source_nb.metadata) if source_nb else {}
        if kernelspec:
            try:
                meta["kernelspec"] = json.loads(kernelspec)
            except ValueError:
                pass
        return course, meta

    def _source_notebook(self, assignment: str, notebook: str) -> NotebookNode | None:
        """The instructor's source notebook (for tags and notebook metadata), or None."""
        coursedir = CourseDirectory(config=self.config)
        path = os.path.join(coursedir.format_path(coursedir.source_directory, ".", assignment),
                            f"{notebook}.ipynb")
        try:
            return nbformat.read(path, as_version=4)
        except Exception as exc:  # noqa: BLE001 - the gradebook alone still grades
            self.log.warning("coursekit: no tags from the source notebook %s (%s)", path, exc)
            return None

    def _released_source(self, source: str) -> str:
        """The text students got: the hidden test regions removed, as generate_assignment does."""
        cell = nbformat.v4.new_code_cell(source)
        try:
            ClearHiddenTests(parent=self)._remove_hidden_test_region(cell)
        except RuntimeError:  # unbalanced markers in the course's own cell: kept as is
            return source
        return cell.source

    @staticmethod
    def _released_checksum(cell: CourseCell) -> str:
        """nbgrader's checksum of the cell as released (what a student's copy carries)."""
        return utils.compute_checksum(_new_cell(
            cell.cell_type, cell.released, {"nbgrader": cell.nbgrader_metadata()}, "x"))
