"""What the engine gets of Attention Basics (the interface is `coursekit.lab.Lab`).

`settings` is this lab's entry of the course's configuration: the training check's budget
and target (`training`) and the data bundle (`data`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from coursekit.lab import Lab

from . import calls, checks, data

HERE = Path(__file__).resolve().parent

# The labels this lab's calls may report for student code (coursekit.calling has the common ones).
ERROR_KINDS = tuple(re.compile(p) for p in (
    r"AttentionTest\(\.\.\.\) is not an nn\.Module", r"has parameters that cannot be read",
    re.escape(calls.PARAMETERS_MISMATCH),
    r"forward must return a pair \(output, attn_output_weights\)",
    r"could not be set up for training", r"has no parameters to train",
    r"loss cannot be back-propagated",
    re.escape(calls.NO_GRADIENT),
    r"output has shape \((?:(?:B|\d{1,9})(?:, \d{1,9}){0,7})?\), not the query images' "
    r"\(B, 1, 784\): the training loss cannot be computed",
    r"output does not have the query images' shape \(B, 1, 784\): the training loss cannot be computed",
    re.escape(calls.DEVICE_MIX),
))


def make_lab(settings: Mapping[str, Any]) -> Lab:
    """The lab, with the course's `settings` for it."""
    bundle = dict(settings["data"])
    return Lab(
        name="attention_basics",
        folder=HERE,
        settings=settings,
        calls=tuple(calls.CALLS),
        cases=checks.CASES,
        definitions=("lookup", "retrieve", "AttentionTest"),
        job_module=calls.__name__,
        inputs=lambda arrays, s: checks.probes(arrays, dict(s["training"])),
        load_data=checks.load_bundle,
        make_data=lambda path: data.make_bundle(path, **bundle),
        error_kinds=ERROR_KINDS,
        shipped={"lab_checks.py": HERE / "public_checks.py"},
        preload=tuple(settings.get("preload", ())),
    )
