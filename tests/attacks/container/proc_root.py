"""Reads the repository's hidden checks through another process's root: `/proc/<pid>/root`
of the container's PID 1 (root), of the grader and of the zygote (a probe: True on a leak)."""

from __future__ import annotations

import hashlib
import os


def probe(checks_py: str, digest: str) -> bool:
    for pid in sorted(os.listdir("/proc"), key=lambda p: int(p) if p.isdigit() else 1 << 30):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/root{checks_py}", "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() == digest:
                    return True
        except OSError:
            continue
    return False
