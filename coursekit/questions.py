"""The questions of the master notebook: their otter-assign blocks, checked, and the lists
generated from them (the intro's "how this lab is graded" sentence and README.md's).

A question is a `# BEGIN QUESTION` raw cell (YAML: `name:`, `manual: true` for a written
one) up to its `# END QUESTION`; inside, `# BEGIN SOLUTION` / `# BEGIN TESTS` /
`# BEGIN PROMPT` raw cells each need their `# END ...`. A missing end marker would make
otter assign build a broken release without a word, so `read_questions` refuses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

# The line in the master's intro cell that the build replaces with the generated sentence.
INTRO_PLACEHOLDER = "<!-- graded work: `coursekit build` writes the tasks and written questions here -->"
README_BEGIN = "<!-- generated: questions -->"
README_END = "<!-- end generated -->"

_RAW_MARKER = re.compile(r"#\s*(BEGIN|END)\s+(QUESTION|SOLUTION|TESTS|PROMPT)\b", re.IGNORECASE)
_CODE_SOLUTION = re.compile(r"#\s*(BEGIN|END) SOLUTION(?: NO PROMPT)?\s*$")
_CODE_PROMPT = re.compile(r"#\s*(BEGIN|END) PROMPT\s*$")
_NUMBERED_HEADING = re.compile(r"^#{1,6}\s*(\d+(?:\.\d+)*)\.?(?:\s|$)")
_HEADING = re.compile(r"^#{1,6}\s")
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


class MarkupError(ValueError):
    """The master notebook's otter-assign markup is broken; the message names the question."""


@dataclass
class Question:
    """One `# BEGIN QUESTION` … `# END QUESTION` block of the master notebook."""

    name: str
    manual: bool
    config: dict
    start: int  # index of the BEGIN QUESTION cell
    end: int = -1  # index of the END QUESTION cell
    blocks: list[str] = field(default_factory=list)  # SOLUTION, TESTS, PROMPT, in order
    test_cells: list[int] = field(default_factory=list)  # code cells inside BEGIN/END TESTS
    prompt: str = ""  # the first line of the first Markdown cell inside the question
    section: str = ""  # the numbered heading the question sits under ("3", "6.3")

    @property
    def number(self) -> str:
        """A written question's number from its prompt heading ("### 3.1 Question" -> "3.1"),
        else the section it sits in, else its name."""
        m = _NUMBERED_HEADING.match(self.prompt)
        return m.group(1) if m else (self.section or self.name)

    @property
    def code_name(self) -> str:
        """What an autograded question has students write: the first `code` span of its
        prompt heading ("### Task 3: implement `AttentionTest.forward`"), else its name."""
        m = re.search(r"`([^`]+)`", self.prompt)
        return m.group(1) if m else self.name

    @property
    def has_solution(self) -> bool:
        return "SOLUTION" in self.blocks


def _marker(cell: nbformat.NotebookNode) -> tuple[str, str] | None:
    if cell.cell_type != "raw":
        return None
    m = _RAW_MARKER.match(cell.source.lstrip())
    return (m.group(1).upper(), m.group(2).upper()) if m else None


def _check_code_markers(source: str, where: str) -> None:
    """In-cell `# BEGIN SOLUTION NO PROMPT`/`# END SOLUTION` and `# BEGIN PROMPT`/
    `# END PROMPT` lines must pair up, in order."""
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


def read_questions(nb: nbformat.NotebookNode) -> list[Question]:
    """The notebook's questions, in order; raise MarkupError for a block without its end
    marker (or an end marker without its block), naming the question."""
    questions: list[Question] = []
    current: Question | None = None
    inner: tuple[str, int] | None = None  # the open SOLUTION/TESTS/PROMPT block and its cell
    section = ""
    for i, cell in enumerate(nb.cells):
        marker = _marker(cell)
        here = f"question '{current.name}'" if current else f"cell {i}"
        if marker is None:
            if current is None:
                if cell.cell_type == "markdown":
                    for line in cell.source.splitlines():
                        m = _NUMBERED_HEADING.match(line)
                        if m:
                            section = m.group(1)
                continue
            if cell.cell_type == "markdown" and not current.prompt and inner is None:
                current.prompt = next((ln.strip() for ln in cell.source.splitlines() if _HEADING.match(ln)), "")
            if cell.cell_type == "code":
                _check_code_markers(cell.source, f"question '{current.name}': a code cell (cell {i})")
                if inner and inner[0] == "TESTS":
                    current.test_cells.append(i)
            continue
        kind, block = marker
        if block == "QUESTION":
            if kind == "BEGIN":
                try:
                    config = yaml.safe_load(cell.source) or {}
                except yaml.YAMLError as exc:
                    raise MarkupError(f"the '# BEGIN QUESTION' cell (cell {i}) is not valid YAML ({exc})") from None
                name = config.get("name") if isinstance(config, dict) else None
                if not name:
                    raise MarkupError(f"the '# BEGIN QUESTION' cell (cell {i}) has no `name:`")
                if current is not None:
                    raise MarkupError(f"{here} has no '# END QUESTION' (the next '# BEGIN QUESTION', "
                                      f"of question '{name}' in cell {i}, comes first)")
                current = Question(name=str(name), manual=bool(config.get("manual")), config=config,
                                   start=i, section=section)
                continue
            if current is None:
                raise MarkupError(f"cell {i} is an '# END QUESTION' without its '# BEGIN QUESTION'")
            if inner is not None:
                raise MarkupError(f"{here}: its '# BEGIN {inner[0]}' (cell {inner[1]}) has no "
                                  f"'# END {inner[0]}' before the '# END QUESTION' (cell {i})")
            current.end = i
            questions.append(current)
            current = None
            continue
        if current is None:
            raise MarkupError(f"cell {i} is a '# {kind} {block}' outside any question "
                              "(between '# BEGIN QUESTION' and '# END QUESTION')")
        if kind == "BEGIN":
            if inner is not None:
                raise MarkupError(f"{here}: its '# BEGIN {inner[0]}' (cell {inner[1]}) has no "
                                  f"'# END {inner[0]}' before the '# BEGIN {block}' (cell {i})")
            inner = (block, i)
            current.blocks.append(block)
        else:
            if inner is None or inner[0] != block:
                raise MarkupError(f"{here}: the '# END {block}' (cell {i}) has no '# BEGIN {block}'"
                                  + (f" (the open block is '# BEGIN {inner[0]}', cell {inner[1]})" if inner else ""))
            inner = None
    if current is not None:
        if inner is not None:
            raise MarkupError(f"question '{current.name}': its '# BEGIN {inner[0]}' (cell {inner[1]}) "
                              f"has no '# END {inner[0]}', and the question no '# END QUESTION'")
        raise MarkupError(f"question '{current.name}' has no '# END QUESTION'")
    return questions


def _words(n: int) -> str:
    return _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def graded_work(questions: list[Question]) -> str:
    """The sentence that tells students what is graded, from the questions themselves:
    the code they implement (with its section) and the written questions (by number)."""
    code = [f"`{q.code_name}`" + (f" (section {q.section})" if q.section else "")
            for q in questions if not q.manual and q.has_solution]
    written = [q.number for q in questions if q.manual]
    parts = []
    if code:
        parts.append(f"implement {_words(len(code))} piece{'s' * (len(code) != 1)} of code: {_join(code)}")
    if written:
        parts.append(f"answer the written question{'s' * (len(written) != 1)} {_join(written)} in the "
                     + ("Markdown cells below them" if len(written) != 1 else "Markdown cell below it"))
    if not parts:
        return ""
    return "You " + (", and you ".join(parts)) + "."


def fill_intro(nb: nbformat.NotebookNode, questions: list[Question]) -> bool:
    """Replace the intro's placeholder line with the graded-work sentence; False if the
    notebook has no placeholder."""
    sentence = graded_work(questions)
    found = False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and INTRO_PLACEHOLDER in cell.source:
            cell.source = cell.source.replace(INTRO_PLACEHOLDER, sentence)
            found = True
    return found


def readme_with_questions(readme: str, master: Path) -> str:
    """README.md's text with its generated block (between README_BEGIN and README_END,
    indented like the first marker) rewritten from the master notebook."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < start:
        return readme
    line_start = readme.rfind("\n", 0, start) + 1
    indent = readme[line_start:start]
    if indent.strip():  # the marker shares its line with text ("2. <!-- ... -->")
        indent = " " * len(indent)
    sentence = graded_work(read_questions(nbformat.read(master, as_version=4)))
    end_line_start = readme.rfind("\n", 0, end) + 1
    return (readme[:start + len(README_BEGIN)] + "\n" + indent + sentence + "\n"
            + readme[end_line_start:])


def update_readme(readme: Path, master: Path) -> bool:
    """Rewrite README.md's generated block from the master; True if it changed."""
    if not readme.is_file():
        return False
    old = readme.read_text()
    new = readme_with_questions(old, master)
    if new != old:
        readme.write_text(new)
    return new != old


_RUN_CASE = re.compile(r"""run_case\(\s*["']([A-Za-z_]\w*)["']""")


def check_hidden_cases(nb: nbformat.NotebookNode, questions: list[Question],
                       cases: dict[str, str]) -> None:
    """Every hidden test cell of an autograded question calls `attention_checks.run_case`,
    and the cases a question's hidden cells run are exactly the cases `coursekit/checks.py`
    (`cases`: case id -> question) scores for it; else MarkupError."""
    for q in questions:
        if q.manual:
            continue
        ran: list[str] = []
        for i in q.test_cells:
            source = nb.cells[i].source
            config = re.search(r"#\s*BEGIN TEST CONFIG(.*?)#\s*END TEST CONFIG", source, re.S)
            hidden = bool(config and re.search(r"^\s*hidden:\s*true\s*$", config.group(1), re.M | re.I))
            if not hidden:
                continue
            ids = _RUN_CASE.findall(source)
            if not ids:
                raise MarkupError(f"question '{q.name}': its hidden test cell (cell {i}) does not call "
                                  "attention_checks.run_case(...) (a case of coursekit/checks.py CASES)")
            ran += ids
        want = sorted(c for c, question in cases.items() if question == q.name)
        unknown = sorted(set(ran) - set(cases))
        if unknown:
            raise MarkupError(f"question '{q.name}': its hidden test cells run {', '.join(unknown)}, "
                              "not a case of coursekit/checks.py CASES")
        elsewhere = sorted(c for c in set(ran) if cases[c] != q.name)
        if elsewhere:
            raise MarkupError(f"question '{q.name}': its hidden test cells run "
                              + ", ".join(f"{c} (a case of question '{cases[c]}')" for c in elsewhere))
        missing = sorted(set(want) - set(ran))
        if missing:
            raise MarkupError(f"question '{q.name}': coursekit/checks.py CASES scores {', '.join(missing)} "
                              "for it, but no hidden test cell runs "
                              + ("them" if len(missing) > 1 else "it")
                              + " (the points are split over the hidden test cells)")
