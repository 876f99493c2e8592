"""The untrusted side of the Scaling lab: call the student's `scale` on the hidden inputs."""

from __future__ import annotations

from typing import Any

from coursekit.calling import NOT_DEFINED, StudentError, as_array, student
from coursekit.lab import Call

CALLS = [Call("scale", "scale", ("scores", "temperature"))]


def evaluate(call: Call, defs: dict[str, Any], p: dict[str, Any], runtime: dict[str, Any] | None = None) -> dict:
    """`scale(scores, temperature)` on the hidden inputs, as plain arrays."""
    fn = defs.get(call.target)
    if fn is None or not callable(fn):
        raise StudentError(NOT_DEFINED)
    return {"value": as_array(student(fn, *(p[a].clone() for a in call.args)))}
