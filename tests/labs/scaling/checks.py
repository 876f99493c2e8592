"""The hidden check of the Scaling lab: `scale(scores, t)` is `scores / t`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from coursekit.calling import StudentError
from coursekit.lab import Case, CheckFailed


def probes(data: Any = None, settings: Any = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return {"scores": torch.randn(3, 5, generator=g), "temperature": torch.tensor(0.5)}


def v_scale(outputs: dict[str, Any], p: dict[str, torch.Tensor]) -> None:
    out = outputs.get("scale")
    if isinstance(out, StudentError):
        raise CheckFailed(f"scale: {out.kind}")
    value = out.get("value") if isinstance(out, dict) else None
    want = (p["scores"] / p["temperature"]).numpy()
    if not isinstance(value, np.ndarray) or value.shape != want.shape or not np.allclose(value, want):
        raise CheckFailed("scale: the result is not the scores divided by the temperature")


CASES = {"scale_values": Case("scale", ("scale",), v_scale)}


def run_case(case_id: str, **defs: Any) -> None:
    """Evaluate and judge one case in this process (the master's hidden test cells)."""
    from .calls import CALLS, evaluate

    p = probes()
    outputs: dict[str, Any] = {}
    for call in CALLS:
        try:
            outputs[call.id] = evaluate(call, defs, p)
        except StudentError as err:
            outputs[call.id] = err
    CASES[case_id].verdict(outputs, p)
