"""The Gradescope image: the `setup.sh` and `run_autograder` the autograder zip carries.

otter's own `setup.sh` downloads Miniforge from GitHub, makes a conda environment, pip-
installs torch with the whole CUDA stack (several GB; Gradescope has no GPU) and always
installs playwright and Chromium. Ours (issue 20) installs only what the grader runs:

- Python 3.11 (a final release) from the distribution's packages unless the image has it
  (`python3.11`, `python3.11-venv`; on Ubuntu 22.04, whose archive has only 3.11.0rc1 —
  torch cannot import there — from the deadsnakes PPA), and a virtual environment in `VENV`;
- torch and torchvision from PyTorch's CPU-only wheel index unless the course grades on
  a GPU (`uses_cuda`); then the registry's CUDA build and NVML's bindings;
- every other package pinned to the version this build ran with, installed without
  dependency resolution: the closure of otter-grader's runner and the lab's requirements,
  read from the build's own environment, less the extras the grader never uses
  (playwright, with its Chromium, and pypdf while PDFs are off).
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from dataclasses import dataclass

VENV = "/opt/coursekit-venv"  # fixed: run_autograder and the tests' container know it
SOURCE = "/autograder/source"
TORCH_FILE = "requirements-torch.txt"  # torch + torchvision: from the CPU index on a CPU image
PACKAGES_FILE = "requirements-image.txt"  # everything else, from the package registry
TORCH_FAMILY = ("torch", "torchvision")
# otter's runner (Gradescope calls otter.run.run_autograder): its own requirements plus the
# `grading` extra; not `plugins` (Google Sheets) nor `r`.
OTTER_ROOT = "otter-grader[grading]"
# Requirements only the CUDA build of torch has (the CPU wheel lists none of them).
_CUDA_ONLY = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")
# otter needs these only to make PDFs: playwright (nbconvert's `webpdf`, with Chromium
# beside it) renders them, pypdf (otter's `grading` extra) merges them.
_PDF_ONLY = {"playwright", "pypdf"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class ImageSpec:
    """The course's settings for the image (course_config.AUTOGRADER_*), and where the lab's
    device calls run (`device`: auto | cpu | cuda)."""

    python_version: str
    requirements: tuple[str, ...]
    gpu: bool
    torch_cpu_index: str
    device: str = "auto"

    @property
    def uses_cuda(self) -> bool:
        """Whether the image gets torch's CUDA build: the device calls are forced onto CUDA,
        or the device is "auto" and the course says its autograder machines have a GPU."""
        return self.device == "cuda" or (self.device == "auto" and self.gpu)


def roots(spec: ImageSpec, cuda: bool) -> list[str]:
    """What the grader imports: otter's runner and the course's image requirements
    (NVML's bindings only where there is a GPU to read)."""
    from packaging.requirements import Requirement  # the build's, not the grader's: imported here

    reqs = [r for r in spec.requirements if cuda or _norm(Requirement(r).name) != "nvidia-ml-py"]
    return [OTTER_ROOT, *reqs]


def pins(spec: ImageSpec, *, cuda: bool, pdf: bool = False) -> list[str]:
    """`name==version` for every distribution the image needs, read from this build's
    environment; fails when a course pin differs from what the build ran with."""
    from packaging.requirements import Requirement

    wanted = {_norm(Requirement(r).name): Requirement(r) for r in roots(spec, cuda)}
    found: dict[str, str] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in roots(spec, cuda)]
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        extras = frozenset(req.extras)
        if ((name, extras) in visited or (not cuda and _CUDA_ONLY.match(name))
                or (not pdf and name in _PDF_ONLY)):
            continue
        visited.add((name, extras))
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise RuntimeError(f"{req.name} is not installed in the build's environment "
                               "(run `make venv`)") from None
        version = dist.version.split("+")[0]  # torch's local label (+cu132) names the build
        pin = wanted.get(name)
        if pin is not None and pin.specifier and version not in pin.specifier:
            raise RuntimeError(f"course_config.AUTOGRADER_REQUIREMENTS pins {pin}, but the build "
                               f"runs {req.name} {version}")
        found[name] = version
        for dep in map(Requirement, dist.requires or []):
            # a dependency applies without extras, or under one of the extras asked for
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append(dep)
    return [f"{n}=={v}" for n, v in sorted(found.items())]


def requirement_files(spec: ImageSpec, *, cuda: bool, pdf: bool = False) -> dict[str, str]:
    """The two pin lists setup.sh installs: torch's pair, and everything else."""
    every = pins(spec, cuda=cuda, pdf=pdf)
    torch = [p for p in every if p.split("==")[0] in TORCH_FAMILY]
    rest = [p for p in every if p.split("==")[0] not in TORCH_FAMILY]
    head = "# generated by coursekit.image from this build's environment: exact pins, no resolution\n"
    return {TORCH_FILE: head + "\n".join(torch) + "\n", PACKAGES_FILE: head + "\n".join(rest) + "\n"}


def setup_sh(spec: ImageSpec, *, cuda: bool, pdf: bool = False) -> str:
    """The script Gradescope runs once to build the image (as root, in Ubuntu 22.04)."""
    python = f"python{spec.python_version}"
    major, minor = spec.python_version.split(".")[:2]
    torch_index = "" if cuda else f" --index-url {spec.torch_cpu_index}"
    pdf_step = ('"$VENV/bin/python" -m playwright install --with-deps chromium  # PDFs are on\n'
                if pdf else "")
    return f"""#!/usr/bin/env bash
# Gradescope runs this once, to build the autograder's image. Generated by coursekit.image
# (issue 20): no conda, no download but the distribution's packages and pinned wheels.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
VENV={VENV}
PYTHON={python}

# Python {spec.python_version} (a final release: torch cannot import in a release candidate) with
# venv, from the distribution's packages unless the image has it.
final() {{ "$PYTHON" -c 'import sys, ensurepip, venv
sys.exit(sys.version_info[:2] != ({major}, {minor}) or sys.version_info.releaselevel != "final")' 2>/dev/null; }}
if ! final; then
    apt-get update
    if apt-cache policy "$PYTHON" | grep -q 'Candidate: .*~rc' && grep -qi ubuntu /etc/os-release; then
        # Ubuntu 22.04 (Gradescope's base) has only 3.11.0rc1: the deadsnakes PPA's build
        apt-get install -y --no-install-recommends software-properties-common gpg-agent
        add-apt-repository -y ppa:deadsnakes/ppa
    fi
    apt-get install -y --no-install-recommends "$PYTHON" "$PYTHON-venv"
    rm -rf /var/lib/apt/lists/*
    final || {{ echo "setup.sh: no final Python {spec.python_version} with venv here" >&2; exit 1; }}
fi
"$PYTHON" -m venv --clear "$VENV"

# torch {'(CUDA build, for a GPU grader)' if cuda else "(CPU-only build: the grader has no GPU)"}, then every other package,
# each pinned, none resolved: what the build ran with, nothing the grader does not use.
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/python" -m pip install --no-deps{torch_index} --requirement {SOURCE}/{TORCH_FILE}
"$VENV/bin/python" -m pip install --no-deps --requirement {SOURCE}/{PACKAGES_FILE}
{pdf_step}"$VENV/bin/python" -m pip check
# fail the build here, not at the first submission
"$VENV/bin/python" -c 'import otter.run.run_autograder, torch, torchvision, numpy, matplotlib, tqdm, pyseccomp'
"""


def run_autograder() -> str:
    """What Gradescope runs for each submission: otter's runner in setup.sh's venv."""
    return f"""#!/usr/bin/env bash
# Gradescope runs this for each submission (generated by coursekit.image).
export PATH={VENV}/bin:$PATH
python {SOURCE}/run_otter.py
"""


def image_files(spec: ImageSpec, *, cuda: bool | None = None, pdf: bool = False) -> dict[str, str]:
    """Every file of the zip that makes the image, by name (default: the course's device)."""
    cuda = spec.uses_cuda if cuda is None else cuda
    return {"setup.sh": setup_sh(spec, cuda=cuda, pdf=pdf), "run_autograder": run_autograder(),
            **requirement_files(spec, cuda=cuda, pdf=pdf)}


# otter's files that the image above replaces (its conda environment)
REPLACED = ("environment.yml",)
