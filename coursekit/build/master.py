"""The one reader of the master notebook's otter-assign markup.

Built on otter's own predicates (`otter.assign.blocks`: `is_assignment_config_cell`,
`is_block_boundary_cell`, `BlockType`, `get_cell_config`; the test-config lines of
`otter.assign.tests_manager`), so the build reads the markup as `otter assign` does. It
reads the notebook once and returns a `Master`: the assignment config, the questions with
their solution, prompt and test cells, and the role of every cell. The release, the
solutions, the otter zip and the nbgrader course are all made from that one model.

A block without its end marker would make otter assign build a broken release without a
word, so `read_master` refuses it and names the question.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import nbformat
import yaml
from otter.assign.blocks import (BlockType, extract_fenced_otter_cell, get_cell_config,
                                 is_assignment_config_cell, is_block_boundary_cell)
from otter.assign.tests_manager import BEGIN_TEST_CONFIG_REGEX, END_TEST_CONFIG_REGEX

# In-cell solution and prompt lines (`# BEGIN SOLUTION NO PROMPT`, `""" # END PROMPT`), as
# otter.assign.solutions recognises them: by how the line ends.
_CODE_SOLUTION = re.compile(r"#\s*(BEGIN|END) SOLUTION(?: NO PROMPT)?\s*$")
_CODE_PROMPT = re.compile(r"#\s*(BEGIN|END) PROMPT\s*$")
_NUMBERED_HEADING = re.compile(r"^#{1,6}\s*(\d+(?:\.\d+)*)\.?(?:\s|$)")
_HEADING = re.compile(r"^#{1,6}\s")


class MarkupError(ValueError):
    """The master's otter-assign markup is broken; the message names the question or cell."""


class Role(Enum):
    """What a cell of the master is to the builds."""

    CONFIG = "config"  # the ASSIGNMENT CONFIG raw cell
    MARKER = "marker"  # a BEGIN/END raw cell
    GIVEN = "given"  # text and code outside any block (in or out of a question)
    SOLUTION = "solution"  # inside BEGIN/END SOLUTION
    PROMPT = "prompt"  # inside BEGIN/END PROMPT (what students get instead of a solution)
    TEST = "test"  # inside BEGIN/END TESTS


@dataclass(frozen=True)
class TestCell:
    """One test cell of a question: its config (otter's `BEGIN TEST CONFIG` header) and body."""

    index: int
    hidden: bool
    config: dict[str, Any]
    body: str  # the source after the config header
    function: str  # the test function's name (`test_lookup_shapes`)
    argument: str  # its parameter: the student's object it tests (`lookup`)
    case_ids: tuple[str, ...]  # the cases its `run_case("...")` calls run


@dataclass
class Question:
    """One `# BEGIN QUESTION` … `# END QUESTION` block of the master."""

    name: str
    manual: bool
    config: dict[str, Any]
    start: int  # index of the BEGIN QUESTION cell
    end: int = -1  # index of the END QUESTION cell
    section: str = ""  # the numbered heading the question sits under ("3", "6.3")
    prompt: str = ""  # the first heading of the first Markdown cell inside the question
    solution_cells: list[int] = field(default_factory=list)
    prompt_cells: list[int] = field(default_factory=list)
    tests: list[TestCell] = field(default_factory=list)

    @property
    def number(self) -> str:
        """A written question's number from its heading ("### 3.1 Question" -> "3.1"), else
        the section it sits in, else its name."""
        m = _NUMBERED_HEADING.match(self.prompt)
        return m.group(1) if m else (self.section or self.name)

    @property
    def code_name(self) -> str:
        """What an autograded question has students write: the first `code` span of its
        heading ("### Task 3: implement `AttentionTest.forward`"), else its name."""
        m = re.search(r"`([^`]+)`", self.prompt)
        return m.group(1) if m else self.name

    @property
    def has_solution(self) -> bool:
        return bool(self.solution_cells)

    @property
    def hidden_tests(self) -> list[TestCell]:
        return [t for t in self.tests if t.hidden]

    @property
    def public_tests(self) -> list[TestCell]:
        return [t for t in self.tests if not t.hidden]


@dataclass
class Master:
    """The parsed master: its assignment config, questions and each cell's role (by the
    index of the cell in the notebook it was read from)."""

    config_cell: int
    config: dict[str, Any]
    questions: list[Question]
    roles: list[Role]
    owner: list[str | None]  # the question each cell belongs to, or None

    def question(self, name: str) -> Question:
        """The question called `name` (KeyError if there is none)."""
        for q in self.questions:
            if q.name == name:
                return q
        raise KeyError(name)

    def test_at(self, index: int) -> TestCell | None:
        """The test cell at `index`, or None."""
        return next((t for q in self.questions for t in q.tests if t.index == index), None)


def _block(cell: nbformat.NotebookNode) -> tuple[bool, BlockType] | None:
    """(is an end marker, the block type) of a boundary cell, by otter's own predicate."""
    for block in BlockType:
        for end in (False, True):
            if is_block_boundary_cell(cell, block, end=end):
                return end, block
    return None


def _marker_name(end: bool, block: BlockType) -> str:
    return f"# {'END' if end else 'BEGIN'} {block.name}"


def check_code_markers(source: str, where: str) -> None:
    """In-cell `# BEGIN SOLUTION`/`# END SOLUTION` and `# BEGIN PROMPT`/`# END PROMPT`
    lines must pair up, in order; else MarkupError naming `where`."""
    for pattern, what in ((_CODE_SOLUTION, "SOLUTION"), (_CODE_PROMPT, "PROMPT")):
        open_ = False
        for line in source.splitlines():
            m = pattern.search(line.rstrip())
            if not m:
                continue
            begin = m.group(1) == "BEGIN"
            if begin == open_:
                raise MarkupError(f"{where} has a '# {m.group(1)} {what}' line "
                                  + ("inside another one" if begin else f"without its '# BEGIN {what}'"))
            open_ = begin
        if open_:
            raise MarkupError(f"{where} has a '# BEGIN {what}' line without its '# END {what}'")


def _case_ids(tree: ast.AST) -> tuple[str, ...]:
    """The literal case ids of every `run_case("<id>", ...)` call in `tree`."""
    ids = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name == "run_case" and isinstance(first, ast.Constant) and isinstance(first.value, str):
                ids.append(first.value)
    return tuple(ids)


def read_test(index: int, source: str, question: str) -> TestCell:
    """Parse one test cell as otter does: an optional `BEGIN TEST CONFIG` header (YAML),
    then a test function and its call."""
    lines = re.split(r"\r?\n", source)
    config: dict[str, Any] = {}
    start = 0
    if lines and re.match(BEGIN_TEST_CONFIG_REGEX, lines[0], flags=re.IGNORECASE):
        end = next((i for i, ln in enumerate(lines) if re.match(END_TEST_CONFIG_REGEX, ln, flags=re.IGNORECASE)),
                   None)
        if end is None:
            raise MarkupError(f"question '{question}': its test cell (cell {index}) has a BEGIN TEST CONFIG "
                              "line without its END TEST CONFIG")
        try:
            config = yaml.safe_load("\n".join(lines[1:end])) or {}
        except yaml.YAMLError as exc:
            raise MarkupError(f"question '{question}': the test config of cell {index} is not valid YAML "
                              f"({' '.join(str(exc).split())})") from None
        if not isinstance(config, dict):
            raise MarkupError(f"question '{question}': the test config of cell {index} is not a mapping")
        start = end + 1
    # otter: a first line `# HIDDEN` comment, or `hidden:` in the config
    hidden = bool(lines and lines[0].lstrip().startswith("#") and re.search(r"\bhidden\b", lines[0], re.I))
    hidden = bool(config.get("hidden", hidden))
    body = "\n".join(lines[start:])
    try:
        tree = ast.parse(body)
    except SyntaxError as exc:
        raise MarkupError(f"question '{question}': its test cell (cell {index}) is not valid Python "
                          f"({exc.msg}, line {exc.lineno})") from None
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), None)
    if func is None:
        raise MarkupError(f"question '{question}': its test cell (cell {index}) defines no test function "
                          "(otter's exception-based tests: `def test_...(name):` and its call)")
    argument = func.args.args[0].arg if func.args.args else ""
    return TestCell(index=index, hidden=hidden, config=config, body=body, function=func.name,
                    argument=argument, case_ids=_case_ids(tree))


def _cell_config(cell: nbformat.NotebookNode, i: int, header: str) -> dict[str, Any]:
    """The YAML of a raw otter cell (`# <header>` and its settings), as otter reads it."""
    try:
        config = get_cell_config(cell)
    except yaml.YAMLError as exc:
        raise MarkupError(f"the '# {header}' cell (cell {i}) is not valid YAML "
                          f"({' '.join(str(exc).split())})") from None
    if not isinstance(config, dict):
        raise MarkupError(f"the '# {header}' cell (cell {i}) is not a YAML mapping (`key: value` lines)")
    return config


def read_master(nb: nbformat.NotebookNode) -> Master:
    """Parse the master once: raise MarkupError for a block without its end marker (or an
    end marker without its block), a block outside a question, or no ASSIGNMENT CONFIG."""
    questions: list[Question] = []
    roles: list[Role] = []
    owner: list[str | None] = []
    config_cell, config = -1, {}
    current: Question | None = None
    inner: tuple[BlockType, int] | None = None  # the open SOLUTION/TESTS/PROMPT block and its cell
    section = ""
    for i, cell in enumerate(nb.cells):
        here = f"question '{current.name}'" if current else f"cell {i}"
        owner.append(current.name if current else None)
        if is_assignment_config_cell(cell):
            config_cell, config = i, _cell_config(cell, i, "ASSIGNMENT CONFIG")
            roles.append(Role.CONFIG)
            continue
        marker = _block(cell)
        if marker is None:
            role = {None: Role.GIVEN, BlockType.SOLUTION: Role.SOLUTION, BlockType.PROMPT: Role.PROMPT,
                    BlockType.TESTS: Role.TEST}[inner[0] if inner else None]
            roles.append(role)
            if current is None:
                if cell.cell_type == "markdown":
                    for line in cell.source.splitlines():
                        m = _NUMBERED_HEADING.match(line)
                        section = m.group(1) if m else section
                continue
            if cell.cell_type == "markdown" and not current.prompt and inner is None:
                current.prompt = next((ln.strip() for ln in cell.source.splitlines() if _HEADING.match(ln)), "")
            if cell.cell_type == "code":
                check_code_markers(cell.source, f"question '{current.name}': a code cell (cell {i})")
            if role is Role.SOLUTION:
                current.solution_cells.append(i)
            elif role is Role.PROMPT:
                current.prompt_cells.append(i)
            elif role is Role.TEST and cell.cell_type == "code":
                current.tests.append(read_test(i, cell.source, current.name))
            continue
        roles.append(Role.MARKER)
        end, block = marker
        name = _marker_name(end, block)
        if block is BlockType.QUESTION:
            if not end:
                conf = _cell_config(extract_fenced_otter_cell(cell), i, "BEGIN QUESTION")
                if not conf.get("name"):
                    raise MarkupError(f"the '# BEGIN QUESTION' cell (cell {i}) has no `name:`")
                if current is not None:
                    raise MarkupError(f"{here} has no '# END QUESTION' (the next '# BEGIN QUESTION', "
                                      f"of question '{conf['name']}' in cell {i}, comes first)")
                current = Question(name=str(conf["name"]), manual=bool(conf.get("manual")), config=conf,
                                   start=i, section=section)
                owner[i] = current.name
                continue
            if current is None:
                raise MarkupError(f"cell {i} is an '# END QUESTION' without its '# BEGIN QUESTION'")
            if inner is not None:
                raise MarkupError(f"{here}: its '# BEGIN {inner[0].name}' (cell {inner[1]}) has no "
                                  f"'# END {inner[0].name}' before the '# END QUESTION' (cell {i})")
            current.end = i
            questions.append(current)
            current = None
            continue
        if current is None:
            raise MarkupError(f"cell {i} is a '{name}' outside any question "
                              "(between '# BEGIN QUESTION' and '# END QUESTION')")
        if not end:
            if inner is not None:
                raise MarkupError(f"{here}: its '# BEGIN {inner[0].name}' (cell {inner[1]}) has no "
                                  f"'# END {inner[0].name}' before the '{name}' (cell {i})")
            inner = (block, i)
        else:
            if inner is None or inner[0] is not block:
                raise MarkupError(f"{here}: the '{name}' (cell {i}) has no '# BEGIN {block.name}'"
                                  + (f" (the open block is '# BEGIN {inner[0].name}', cell {inner[1]})"
                                     if inner else ""))
            inner = None
    if current is not None:
        if inner is not None:
            raise MarkupError(f"question '{current.name}': its '# BEGIN {inner[0].name}' (cell {inner[1]}) "
                              f"has no '# END {inner[0].name}', and the question no '# END QUESTION'")
        raise MarkupError(f"question '{current.name}' has no '# END QUESTION'")
    if config_cell < 0:
        raise MarkupError("no '# ASSIGNMENT CONFIG' raw cell (otter-assign format)")
    names = [q.name for q in questions]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise MarkupError(f"question {', '.join(repr(n) for n in twice)} is defined more than once")
    return Master(config_cell=config_cell, config=config, questions=questions, roles=roles,
                  owner=owner)


def load_master(path: Path) -> tuple[nbformat.NotebookNode, Master]:
    """Read the notebook at `path` and parse it (MarkupError for a file that is not a notebook)."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any reason it cannot be read: one line
        raise MarkupError(f"not a readable notebook ({' '.join(str(exc).split())[:200]})") from None
    return nb, read_master(nb)
