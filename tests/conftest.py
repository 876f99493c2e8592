"""Shared fixtures: one fresh build per test session, in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import COURSE

REPO = COURSE.root


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build release, solutions and zip from the master notebook (the solution is graded
    against every test during the build, so this fixture fails if the solution does not
    earn full marks)."""
    from coursekit.build import build

    return build(out_root=tmp_path_factory.mktemp("build"), quiet=True)


@pytest.fixture
def fake_dev(tmp_path):
    """A /dev with two stand-in GPUs (character devices 1:3, i.e. /dev/null)."""
    if os.geteuid() != 0:
        pytest.skip("stand-in device nodes need mknod (root)")
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        os.mknod(dev / name, 0o666 | 0o020000, os.makedev(1, 3))
    (dev / "nvidia-modeset.txt").write_text("not a device")
    (dev / "nvidia7").write_text("a plain file is not a GPU")
    os.chmod(tmp_path, 0o755)
    return dev
