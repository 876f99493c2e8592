"""Calling student code inside the sandbox: what it raises or returns becomes a fixed label.

The attack it stops: feedback that carries the student's own text (an exception's message,
a class named to look like a verdict) or a value the grader cannot read safely (a subclass
of Tensor, a complex or a half tensor). Every lab's job module calls student code through
`student()` and turns results into plain arrays with `as_array()`; the labels below, and the
lab's own `error_kinds`, are the only texts a job may report (`coursekit.engine` maps any
other to "failed").
"""

from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np
import torch


class StudentError(Exception):
    """Student code raised or returned something unusable; `kind` is a short fixed label."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


NOT_DEFINED = "not defined (run the cell that defines it)"
GPU_MEMORY = "ran out of GPU memory (a submission may use {mb} MB)"
GPU_MEMORY_MB = [0]  # the job's cap (the job's runtime sets it): for the message above

_BUILTIN_EXC = r"(?:[A-Z][A-Za-z]*(?:Error|Exception|Exit|Interrupt|Warning|Iteration)|an exception)"
ERROR_KINDS = tuple(re.compile(p) for p in (
    r"not implemented yet", re.escape(NOT_DEFINED), rf"raised {_BUILTIN_EXC}",
    r"returned (?:[A-Za-z_]+|a numpy array|an object|None), not a torch\.Tensor",
    r"returned a complex tensor, not a real one",
    r"ran out of GPU memory \(a submission may use \d{1,7} MB\)",
))


def student(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)`; whatever it raises becomes a StudentError with a fixed label."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise StudentError("not implemented yet") from None
    except StudentError:
        raise
    except torch.OutOfMemoryError as exc:
        gpu_oom_is_the_verdict(exc)  # torch's allocator cap (the supervisor's NVML check is the other)
        raise StudentError(f"raised {exception_name(exc)}") from None
    except Exception as exc:  # only the exception's type reaches the student
        import traceback

        traceback.print_exc()  # into the sandbox's log, for the TA; never into feedback
        raise StudentError(f"raised {exception_name(exc)}") from None


def gpu_oom_is_the_verdict(exc: BaseException) -> None:
    """Raise the GPU-memory verdict when `exc` is out of *GPU* memory (torch raises the
    same type for the CPU's allocator, which is not)."""
    if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_initialized() and "CUDA" in str(exc):
        raise StudentError(GPU_MEMORY.format(mb=GPU_MEMORY_MB[0])) from None


def as_array(value: Any) -> np.ndarray:
    """A student's return value as a plain array; anything else is a StudentError."""
    if not isinstance(value, torch.Tensor):
        raise StudentError(f"returned {type_name(value)}, not a torch.Tensor")
    arr = value.detach().to("cpu")
    if arr.is_complex():  # numpy would keep it complex, and the channel would drop its imaginary part
        raise StudentError("returned a complex tensor, not a real one")
    if arr.dtype == torch.bfloat16 or arr.dtype == torch.float16:
        arr = arr.float()
    return arr.numpy().copy()


def builtin_name(cls: type, fallback: str) -> str:
    """A built-in class's name, else `fallback`: student-chosen names never reach feedback."""
    import builtins

    name = cls.__name__
    return name if getattr(builtins, name, None) is cls else fallback


def exception_name(exc: BaseException) -> str:
    """`exc`'s built-in type name, or "an exception"."""
    return builtin_name(type(exc), "an exception")


def type_name(value: Any) -> str:
    """A value's type as feedback may name it: built-in names only."""
    if isinstance(value, np.ndarray):
        return "a numpy array"
    return "None" if value is None else builtin_name(type(value), "an object")
