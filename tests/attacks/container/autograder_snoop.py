"""Reads Gradescope's `/autograder`: the unzipped autograder (hidden checks, bundled data,
settings), the upload, the results being written (a probe: True on a leak)."""

from __future__ import annotations

import os


def probe() -> bool:
    for folder, _, files in os.walk("/autograder"):
        for name in files:
            try:
                with open(os.path.join(folder, name), "rb") as f:
                    if f.read(64):
                        return True
            except OSError:
                continue
    return False
