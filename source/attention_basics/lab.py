"""What the engine gets of Attention Basics (the interface is `coursekit.lab.Lab`).

`settings` is this lab's entry of the course's configuration: the training check's budget
and target (`training`) and the data bundle (`data`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from coursekit.lab import Lab, LabError

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


TRAINING_KEYS = {"seed": int, "steps": int, "batch_size": int, "lr": float, "embed_dim": int,
                 "num_heads": int, "target_mse": float}
DATA_KEYS = {"seed": int, "database": int, "train": int, "heldout": int}


def _table(settings: Mapping[str, Any], name: str, keys: dict[str, type]) -> dict[str, Any]:
    """lab.toml's table `name`, checked: exactly `keys`, each of its type (ints are floats too)."""
    table = settings.get(name)
    where = HERE / "lab.toml"
    if not isinstance(table, dict) or set(table) != set(keys):
        raise LabError(f"{where}: [{name}] must set exactly {', '.join(keys)}; it is {table!r}")
    for key, kind in keys.items():
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind) or value < 0:
            what = "an integer" if kind is int else "a number"
            raise LabError(f"{where}: {name}.{key} must be {what} ≥ 0; it is {value!r}")
    return dict(table)


def make_lab(settings: Mapping[str, Any]) -> Lab:
    """The lab, with its settings (lab.toml's [training] and [data], the course's data root)."""
    training = _table(settings, "training", TRAINING_KEYS)
    bundle = _table(settings, "data", DATA_KEYS)
    return Lab(
        name="attention_basics",
        folder=HERE,
        settings={**settings, "training": training},
        calls=tuple(calls.CALLS),
        cases=checks.CASES,
        definitions=("lookup", "retrieve", "AttentionTest"),
        job_module=calls.__name__,
        inputs=lambda arrays, s: checks.probes(arrays, dict(s["training"])),
        load_data=checks.load_bundle,
        make_data=lambda path: data.make_bundle(path, mnist_root=settings["data_root"],
                                                cache=Path(settings["cache"]) / "mnist", **bundle),
        error_kinds=ERROR_KINDS,
        public_checks=HERE / "public_checks.py",
        preload=tuple(settings.get("preload", ())),
    )
