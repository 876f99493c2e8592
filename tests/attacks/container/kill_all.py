"""Signals every process it may: `kill(-1)` (as root in a container without a PID namespace
of the job's own, this would end the grader), then its parent (an attack cell)."""

from __future__ import annotations

import os
import signal


def attack() -> None:
    for pid in (-1, os.getppid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
