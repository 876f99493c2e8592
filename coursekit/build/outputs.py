"""A build's outputs are all or nothing: every file is written into a staging folder that
mirrors the output root, and moved into place only once every part of the build succeeded.

A failed build changes no output, so the release, solutions, zip, nbgrader course and
README.md in a checkout always come from one build (never a set a TA could commit or
upload half old, half new). Files are replaced one by one, each atomically (a copy beside
its target, then a rename), after all the copies were made.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from coursekit.build.errors import BuildError


class StagedOutputs:
    """The files one build writes under `root`, held in `staging` until `commit`."""

    def __init__(self, root: Path, staging: Path) -> None:
        self.root = root
        self.staging = staging

    def path(self, final: Path) -> Path:
        """Where to write what belongs at `final` (a file or folder under the root)."""
        staged = self.staging / final.relative_to(self.root)
        staged.parent.mkdir(parents=True, exist_ok=True)
        return staged

    def files(self) -> list[Path]:
        """The staged files, relative to the staging folder, in a stable order."""
        return sorted(p.relative_to(self.staging) for p in self.staging.rglob("*") if p.is_file())

    def commit(self) -> list[Path]:
        """Move every staged file into place; return their final paths.

        All copies are made beside their targets first (same filesystem, so the renames
        that follow cannot fail half way for want of space); if one cannot be made, the
        copies made so far are removed and no output changes.
        """
        pending: list[tuple[Path, Path]] = []
        try:
            for rel in self.files():
                final = self.root / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                temp = final.with_name(f".{final.name}.coursekit-new")
                shutil.copyfile(self.staging / rel, temp)
                shutil.copymode(self.staging / rel, temp)
                pending.append((temp, final))
        except OSError as exc:
            for temp, _ in pending:
                temp.unlink(missing_ok=True)
            raise BuildError(f"{exc.filename or self.root}: cannot write the build's outputs there "
                             f"({exc.strerror or exc}); no output was changed") from None
        for temp, final in pending:
            os.replace(temp, final)
        return [final for _, final in pending]
