"""Valid JSON that is not a notebook nbgrader can read: cells that are a string.

Graded as empty: 0 points, with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

SCORE = "none"  # no autograded point
NOTE = "could not be read"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write a JSON object with nbformat 4 fields and no list of cells."""
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                "cells": "lookup = retrieve = None"}))
