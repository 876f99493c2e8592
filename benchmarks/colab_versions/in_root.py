"""The parts of `make colab-check` that run under Colab's versions (and, for comparison, here).

Run by `colab_check.py` inside the Debian 13 root (Python 3.13, torch 2.11: see
requirements-colab.txt), with the repository bound read-only at its own path and MNIST's
test split at ../shared/data; `public` also runs on the project's venv for the comparison.
It needs only what a student's runtime has (torch, nbformat, nbclient, ipykernel): never
otter or the grader.

    python in_root.py versions OUT.json
    python in_root.py public OUT.json            # public-check lines of the whole corpus
    python in_root.py release OUT_DIR            # the release top to bottom on a Colab-like kernel
    python in_root.py corpus OUT_DIR             # each corpus notebook executed and checked
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from coursekit import course  # noqa: E402

COURSE = course.load()
A = COURSE.assignment()
RELEASE = A.release_dir / f"{A.name}.ipynb"
# Colab's versions that matter to the lab, as listed in requirements-colab.txt
PACKAGES = ("torch", "torchvision", "numpy", "matplotlib", "pandas", "ipython", "ipykernel",
            "jupyter_client", "nbformat", "nbclient", "ipywidgets", "otter-grader")

# A stand-in of Colab's google.colab package: otter (when the release installs it) and the
# release's export cell tell Colab apart by `str(get_ipython())` naming google.colab._shell.
COLAB_SHELL = '''from ipykernel.zmqshell import ZMQInteractiveShell


class Shell(ZMQInteractiveShell):
    """Stands in for Colab's shell (its class lives in google.colab._shell)."""
'''
COLAB_KERNEL = '''from ipykernel.ipkernel import IPythonKernel

from google.colab._shell import Shell


class Kernel(IPythonKernel):
    shell_class = Shell
'''
# Offline the MNIST test split stands in for the training split (README "Data"); the
# cell says so in the notebook's output, as in tests/test_student_release.py.
HARNESS = (
    "# colab-check harness: offline, the MNIST test split stands in for the training split\n"
    f"import sys; sys.path.append({str(ROOT)!r})\n"
    "import torchvision.datasets\n"
    "from coursekit.course import load as _load_course\n"
    "from tests.standin.mnist import stand_in_mnist_class\n"
    "_course = _load_course()\n"
    "torchvision.datasets.MNIST = stand_in_mnist_class(_course.mnist_root, _course.root / '.cache' / 'mnist')\n"
    f"sys.path.remove({str(ROOT)!r})\n")


def versions() -> dict[str, Any]:
    """Python's and the packages' versions in this runtime."""
    out: dict[str, Any] = {"python": platform.python_version(),
                           "platform": f"{platform.system()} {platform.machine()}"}
    with contextlib.suppress(OSError):
        os_release = Path("/etc/os-release").read_text()
        out["os"] = re.search(r'PRETTY_NAME="([^"]+)"', os_release).group(1)
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    import torch

    out["torch.__version__"] = torch.__version__
    out["cuda_available"] = torch.cuda.is_available()
    return out


def public_lines() -> dict[str, dict[str, list[str]]]:
    """Each corpus entry's public-check lines by question, as the lab's tests/test_public_checks.py
    computes them (the student's definitions loaded in-process, the lab's public checks)."""
    from coursekit.notebook_defs import load_definitions
    from tests.helpers import public_lines as lines_of, write_corpus

    A.lab()  # imports the lab folder as the package attention_basics (its public checks)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_corpus(RELEASE, Path(tmp)):
            with contextlib.redirect_stdout(io.StringIO()):  # the students' own prints
                out[path.stem] = lines_of(load_definitions(path))
    return out


def colab_kernel(folder: Path, env: dict[str, str]) -> str:
    """Register a kernel `colab` that looks like Colab's under `folder`; return its name.

    JUPYTER_PATH is set in this process so nbclient finds it; the kernel's own environment
    is `env` on top of this one's.
    """
    stub = folder / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub.parent / "__init__.py").write_text("")
    (stub / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab (colab-check)."""\n')
    (stub / "_shell.py").write_text(COLAB_SHELL)
    (stub / "_kernel.py").write_text(COLAB_KERNEL)
    spec = folder / "share" / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.kernel_class=google.colab._kernel.Kernel"],
        "display_name": "Colab (colab-check)", "language": "python",
        "env": {"PYTHONPATH": str(folder / "stub"), **env}}))
    os.environ["JUPYTER_PATH"] = str(folder / "share" / "jupyter")
    return "colab"


def shown(cell: nbformat.NotebookNode) -> list[str]:
    """The non-empty lines a code cell showed (stream, plain-text and error outputs)."""
    text = ""
    for out in cell.get("outputs", []):
        text += out.get("text", "") + out.get("data", {}).get("text/plain", "")
        if out.get("output_type") == "error":
            text += f"{out.get('ename')}: {out.get('evalue')}\n"
    return [line for line in text.splitlines() if line.strip()]


def check_lines(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """What each `grader.check(...)` / `grader.check_all()` cell and the export cell showed."""
    out: dict[str, list[str]] = {}
    for cell in nb.cells:
        src = cell.source.strip() if cell.cell_type == "code" else ""
        m = re.fullmatch(r'grader\.check\("(\w+)"\)', src)
        if m:
            out[m.group(1)] = shown(cell)
        elif src == "grader.check_all()":
            out["check_all"] = shown(cell)
        elif "grader.export(" in src:
            out["export"] = shown(cell)
    return out


def execute(nb: nbformat.NotebookNode, folder: Path, kernel: str, *, skip_ignored: bool,
            timeout: int) -> list[dict[str, Any]]:
    """Run the notebook's code cells in order in one kernel, as Run All does (errors are
    kept as the cell's output and the run goes on); with `skip_ignored`, the cells tagged
    otter_ignore after the set-up cell (data, training, plots) are left unrun. Returns each
    run cell's index and seconds."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=True,
                            resources={"metadata": {"path": str(folder)}})
    times = []
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if skip_ignored and i > 0 and COURSE.rules.ignore_tag in cell.metadata.get("tags", []):
                continue
            start = time.perf_counter()
            client.execute_cell(cell, i)
            times.append({"cell": i, "s": round(time.perf_counter() - start, 2),
                          "first_line": cell.source.strip().split("\n")[0][:80]})
    return times


def solution_spec():
    """The reference solution as a corpus entry (the student's three stubs filled in)."""
    from tests.helpers import REF_FORWARD, REF_LOOKUP, REF_RETRIEVE, Spec

    return Spec(REF_LOOKUP, REF_RETRIEVE, REF_FORWARD)


def kernel_env() -> dict[str, str]:
    """The kernel's environment: MNIST's root, and pip offline from the root's wheelhouse
    (what Colab would download if the release's first cell installs anything)."""
    env = {"MNIST_ROOT": str(COURSE.mnist_root), "PYTHONDONTWRITEBYTECODE": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    wheelhouse = os.environ.get("COLAB_WHEELHOUSE")
    if wheelhouse:
        env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=wheelhouse)
    return env


def run_release(out_dir: Path) -> dict[str, Any]:
    """The release, solution in its stubs, top to bottom on a Colab-like kernel with the
    CPU recipe unchanged; writes the executed notebook (what the student downloads)."""
    from tests.helpers import make_notebook

    out_dir.mkdir(parents=True, exist_ok=True)
    nb = make_notebook(RELEASE, solution_spec())
    nb.cells.insert(1, nbformat.v4.new_code_cell(HARNESS))
    with tempfile.TemporaryDirectory() as tmp:
        content = Path(tmp) / "content"  # Colab's working folder holds only the notebook
        content.mkdir()
        nbformat.write(nb, content / RELEASE.name)
        kernel = colab_kernel(Path(tmp), kernel_env())
        start = time.perf_counter()
        times = execute(nb, content, kernel, skip_ignored=False, timeout=1800)
        elapsed = time.perf_counter() - start
        left = sorted(p.name for p in content.iterdir())
    nbformat.write(nb, out_dir / RELEASE.name)
    text = [line for c in nb.cells if c.cell_type == "code" for line in shown(c)]
    errors = [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(nb.cells)
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    summary = {"seconds": round(elapsed, 1), "cells": times, "checks": check_lines(nb),
               "training": [line for line in text if line.startswith(("Training on", "Minimum MSE"))
                            or "stands in" in line],
               "errors": errors, "files_left": left, "first_cell": nb.cells[0].source}
    (out_dir / "release.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return summary


def run_corpus(out_dir: Path) -> dict[str, Any]:
    """Each corpus notebook executed as a student runs it (set-up, their code, every
    check; the data and training cells left unrun) and saved with its outputs."""
    from tests.helpers import write_corpus

    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        kernel = colab_kernel(Path(tmp), kernel_env())
        for path in write_corpus(RELEASE, Path(tmp) / "corpus"):
            content = Path(tmp) / "content" / path.stem
            content.mkdir(parents=True)
            nb = nbformat.read(path, as_version=4)
            start = time.perf_counter()
            execute(nb, content, kernel, skip_ignored=True, timeout=300)
            nbformat.write(nb, out_dir / path.name)
            summary[path.stem] = {"seconds": round(time.perf_counter() - start, 1),
                                  "checks": check_lines(nb)}
            print(f"{path.stem}: {summary[path.stem]['seconds']} s", flush=True)
    (out_dir / "corpus.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["versions", "public", "release", "corpus"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.what == "versions":
        args.out.write_text(json.dumps(versions(), indent=1))
    elif args.what == "public":
        import torch

        torch.set_num_threads(1)
        args.out.write_text(json.dumps({"versions": versions(), "lines": public_lines()},
                                       indent=1, ensure_ascii=False))
    elif args.what == "release":
        run_release(args.out)
    else:
        run_corpus(args.out)


if __name__ == "__main__":
    main()
