"""The build's one error type."""

from __future__ import annotations


class BuildError(RuntimeError):
    """The build cannot go on; the message names the file and what to fix (no traceback)."""
