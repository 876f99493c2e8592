"""The lists of graded work written from the master's questions: the sentence in the
lab's intro and the block in README.md (so neither can fall out of step with the lab)."""

from __future__ import annotations

import nbformat

from coursekit.build.master import Question

# The line in the master's intro cell that the build replaces with the generated sentence.
INTRO_PLACEHOLDER = "<!-- graded work: `coursekit build` writes the tasks and written questions here -->"
README_BEGIN = "<!-- generated: questions -->"
README_END = "<!-- end generated -->"
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _words(n: int) -> str:
    return _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def graded_work(questions: list[Question]) -> str:
    """The sentence that tells students what is graded: the code they implement (with its
    section) and the written questions (by number)."""
    code = [f"`{q.code_name}`" + (f" (section {q.section})" if q.section else "")
            for q in questions if not q.manual and q.has_solution]
    written = [q.number for q in questions if q.manual]
    parts = []
    if code:
        parts.append(f"implement {_words(len(code))} piece{'s' * (len(code) != 1)} of code: {_join(code)}")
    if written:
        parts.append(f"answer the written question{'s' * (len(written) != 1)} {_join(written)} in the "
                     + ("Markdown cells below them" if len(written) != 1 else "Markdown cell below it"))
    return "You " + ", and you ".join(parts) + "." if parts else ""


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


def readme_begin(lab: str | None = None) -> str:
    """The line that opens README.md's generated block of the lab `lab` (None: the block of
    the course's first lab, which needs no name)."""
    return f"<!-- generated: questions of {lab} -->" if lab else README_BEGIN


def readme_with_questions(readme: str, questions: list[Question], lab: str | None = None,
                          first: bool = True) -> str:
    """README.md's text with the lab's generated block (from `readme_begin(lab)` to the next
    README_END, indented like its first marker) rewritten from the questions. A course of
    several labs names each block; the unnamed block is the first lab's (`first`)."""
    begin = readme_begin(lab)
    start = readme.find(begin) if lab else -1
    if start < 0 and first:
        begin = README_BEGIN
        start = readme.find(begin)
    end = readme.find(README_END, start) if start >= 0 else -1
    if start < 0 or end < 0:
        return readme
    line_start = readme.rfind("\n", 0, start) + 1
    indent = readme[line_start:start]
    if indent.strip():  # the marker shares its line with text ("2. <!-- ... -->")
        indent = " " * len(indent)
    end_line_start = readme.rfind("\n", 0, end) + 1
    return (readme[:start + len(begin)] + "\n" + indent + graded_work(questions) + "\n"
            + readme[end_line_start:])
