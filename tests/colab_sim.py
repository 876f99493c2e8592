"""A simulated Colab runtime for tests: a Python without otter, a kernel that looks like Colab's.

What makes a runtime "Colab" for the tools the release uses: otter and lab_notebook.py check
`str(get_ipython())` for "google.colab" (otter/check/utils.py, `IPythonInterpreter`), so the
kernel here runs a shell class defined in a stub `google.colab._shell` module, as Colab's
own kernel does. otter is absent, and stays so: the runtime's site-packages links every
package of this project's venv except otter-grader, and pip finds no package to install
(PIP_NO_INDEX, an empty PIP_FIND_LINKS): the release's first cell installs nothing (issue 20).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

OTTER_DIST = "otter_grader-7.0.0"
HIDDEN = {"otter", f"{OTTER_DIST}.dist-info"}

SHELL = '''from ipykernel.zmqshell import ZMQInteractiveShell


class Shell(ZMQInteractiveShell):
    """Stands in for Colab's shell: str(get_ipython()) names google.colab._shell."""
'''
KERNEL = '''from ipykernel.ipkernel import IPythonKernel

from google.colab._shell import Shell


class Kernel(IPythonKernel):
    shell_class = Shell
'''


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def colab_runtime(root: Path) -> dict[str, str]:
    """Make the runtime under `root`; return the environment to run its kernel with.

    The kernel is registered as `colab` under root/share/jupyter (JUPYTER_PATH).
    """
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    source = _site_packages()
    for entry in source.iterdir():
        if entry.name in HIDDEN or entry.name == "google":
            continue
        (site / entry.name).symlink_to(entry)
    google = site / "google"
    google.mkdir()
    if (source / "google").is_dir():  # protobuf's and others' google.* stay importable
        for entry in (source / "google").iterdir():
            (google / entry.name).symlink_to(entry)
    colab = google / "colab"
    colab.mkdir()
    (colab / "__init__.py").write_text('"""Stub of Colab\'s google.colab package (tests only)."""\n')
    (colab / "_shell.py").write_text(SHELL)
    (colab / "_kernel.py").write_text(KERNEL)

    python = venv / "bin" / "python"
    spec = root / "share" / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.kernel_class=google.colab._kernel.Kernel"],
        "display_name": "Colab (simulated)", "language": "python"}))
    wheels = root / "wheels"  # empty: an install attempt fails instead of reaching out
    wheels.mkdir()
    return {"JUPYTER_PATH": str(root / "share" / "jupyter"), "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(wheels), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PYTHONNOUSERSITE": "1"}
