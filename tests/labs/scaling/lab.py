"""What the engine gets of the Scaling lab."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from coursekit.lab import Lab

from . import calls, checks

HERE = Path(__file__).resolve().parent


def _no_data(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, none=np.zeros(0))


def make_lab(settings: Mapping[str, Any]) -> Lab:
    return Lab(name="scaling", folder=HERE, settings=settings, calls=tuple(calls.CALLS),
               cases=checks.CASES, definitions=("scale",), job_module=calls.__name__,
               inputs=lambda data, s: checks.probes(), load_data=lambda path: {},
               make_data=_no_data, public_checks=HERE / "public_checks.py",
               preload=tuple(settings.get("preload", ())))
