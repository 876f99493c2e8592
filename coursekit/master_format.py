"""Reading the master notebook's otter-assign markup (shared by the otter and nbgrader builds)."""

from __future__ import annotations

import re

import nbformat
import yaml


def raw_config(cell: nbformat.NotebookNode, header: str) -> dict | None:
    """The YAML of a raw otter cell starting with `# <header>`, or None for other cells."""
    if cell.cell_type != "raw" or not re.match(rf"#\s*{header}\b", cell.source, re.IGNORECASE):
        return None
    return yaml.safe_load(cell.source) or {}


def without_prompt(source: str) -> list[str]:
    """A solution cell's lines without otter's in-cell prompt (the stub students get)."""
    kept, in_prompt = [], False
    for line in source.split("\n"):
        stripped = line.rstrip()
        if stripped.endswith("# BEGIN PROMPT"):
            in_prompt = True
        elif stripped.endswith("# END PROMPT"):
            in_prompt = False
        elif not in_prompt:
            kept.append(line)
    return kept


SOLUTION_MARKER = re.compile(r"# (BEGIN|END) SOLUTION( NO PROMPT)?$")
