"""The autograder zip: `otter assign` lays out the release and the zip (it grades nothing:
`run_tests: false`), then `finish_zip` makes that zip the one Gradescope runs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from coursekit import lab_files
from coursekit.build.errors import BuildError

_PACKAGE = Path(__file__).resolve().parents[1]  # coursekit/
# The grading engine travels at the zip's root, where Gradescope's Python finds it; the
# lab's folder beside it (`lab_files.zip_files`), as in the repository.
ENGINE_MODULES = ("__init__.py", "engine.py", "report.py", "student_side.py", "otter_plugin.py",
                  "submission.py", "safe_read.py", "calling.py", "lab.py", "course.py", "image.py",
                  *(f"sandbox/{p.name}" for p in sorted((_PACKAGE / "sandbox").glob("*.py"))))
_OTTER_NOISE = ("[IPKernelApp]", "During handling of the above exception",
                "The above exception was the direct cause")


def otter_failure_lines(output: str, limit: int = 40) -> list[str]:
    """What matters in otter's output when it fails: no traceback frames, no kernel
    warnings, no passing tests; the exception's own text and otter's summary stay."""
    kept, in_traceback = [], False
    for line in output.splitlines():
        if line.startswith("Traceback (most recent call last):"):
            in_traceback = True
            continue
        if in_traceback:
            if not line.strip() or line.startswith(" "):
                continue
            in_traceback = False
        if (not line.strip() or line.startswith(_OTTER_NOISE) or "All test cases passed" in line
                or line.strip() == "✅ passed"):
            continue
        kept.append(line.rstrip())
    return kept[:limit] + ([f"... ({len(kept) - limit} more lines)"] if len(kept) > limit else [])


def run_otter_assign(staged: Path, dist: Path, master: Path) -> Path:
    """Run `otter assign` on the staged master into `dist`; return its one autograder zip."""
    from coursekit import ENGINE_ROOT

    # otter imports the plugin named in the config: the coursekit of this build, not
    # whichever is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ENGINE_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    cmd = [sys.executable, "-m", "otter", "assign", "--no-run-tests", str(staged), str(dist)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=staged.parent, env=env)
    if proc.returncode != 0:
        lines = otter_failure_lines(proc.stdout + "\n" + proc.stderr)
        raise BuildError(f"{master}: otter assign refused it:\n" + "\n".join(lines))
    zips = sorted((dist / "autograder").glob("*autograder*.zip"))
    if len(zips) != 1:
        raise BuildError(f"otter assign made {len(zips)} autograder zips in {dist / 'autograder'}")
    return zips[0]


def finish_zip(otter_zip: Path, zip_path: Path, a: Any, course: Any, image_cuda: bool | None = None) -> None:
    """Write `zip_path`: otter assign's zip made the one Gradescope runs, with nothing of the
    grader where otter copies files next to the submission and the engine at the zip's root.

    otter's runner copies the zip's `files/` folder and `tests/` into the submission's
    folder before any plugin runs. So the data and settings move to `grader_files/` (the
    plugin reads them there), the checks otter assign needed are dropped, and each test
    file becomes a placeholder: no hidden test, check, seed or datum is ever copied where
    an upload's files lie.

    otter's image (`setup.sh`: Miniforge, conda, torch's CUDA stack, Chromium) gives way
    to ours (`coursekit.image`: a venv with the exact pins, CPU-only torch unless the
    course grades on a GPU); `image_cuda` overrides the course's choice.
    """
    from coursekit import image
    from coursekit.otter_plugin import GRADER_FILES, placeholder_test

    ours = image.image_files(course.image, cuda=image_cuda, pdf=False)  # the staged config turns otter's PDFs off
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(otter_zip) as src, zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            name = info.filename
            if name in ours or name in image.REPLACED:
                continue
            if name.startswith("files/"):
                info.filename = GRADER_FILES + name[len("files"):]
                dst.writestr(info, src.read(name))
            elif name.startswith("tests/") and name.endswith(".py"):
                question = name[len("tests/"):-len(".py")]
                dst.writestr(info, placeholder_test(question, a.points.get(question, 0)))
            else:
                dst.writestr(info, src.read(name))
        for name in ENGINE_MODULES:
            dst.write(_PACKAGE / name, f"coursekit/{name}")
        # The lab and the settings this build used (the zip grades by them, whatever is
        # installed where it runs: see coursekit.otter_plugin.TrustedGrading).
        for name, path in lab_files.zip_files(a).items():
            dst.write(path, name)
        dst.write(course.config_file, "course_config.py")
        for name, text in ours.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if not name.endswith(".txt") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, text)
