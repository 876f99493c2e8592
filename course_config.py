"""The course's settings: which labs it has, and how grading runs on its machines.

Each lab is a folder `source/<name>/` with its master notebook, its checks and its own
settings (`lab.toml`: points, the training target, its data). This file names the labs and
holds what is the same for all of them. `coursekit` reads it once, checks every value
(`coursekit/course.py`) and says which one is wrong; nothing else repeats these values.
Edit this file or a lab's folder, then run `make build`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent

# --- the course --------------------------------------------------------------------
COURSE_NAME = "Deep Learning"
# The labs, each a folder under source/ (the first is the default of `coursekit build`
# and `coursekit grade`; pick another with --assignment NAME).
LABS = ["attention_basics"]
# The nbgrader course (JupyterHub), generated from the labs' masters: run nbgrader in it.
NBGRADER_COURSE_ID = "attention-basics"

# --- data ------------------------------------------------------------------------
# torchvision's MNIST expects <root>/MNIST/raw/. MNIST_ROOT overrides the default.
DEFAULT_MNIST_ROOT = REPO_ROOT.parent / "shared" / "data"


def mnist_root() -> Path:
    """The MNIST root directory: `$MNIST_ROOT` if set, else the course default."""
    return Path(os.environ.get("MNIST_ROOT", str(DEFAULT_MNIST_ROOT))).expanduser()


# --- where the labs' device calls (the training check) run ------------------------
# "auto": on CUDA where the grading machine has a usable NVIDIA GPU, else on the CPU;
# "cpu" or "cuda" force one ("cuda" without a GPU stops grading with an error). The
# score does not depend on it: the MSEs agree (docs/calibration-cuda.md), code that
# only works on the CPU fails a device check on every machine, and a model that
# fails on CUDA for another reason is trained on the CPU (docs/gpu.md).
DEVICE = "auto"
# Each sandbox that trains on a GPU may hold this much GPU memory (torch's allocator is
# capped there, and the grader kills a job whose processes hold more, read through NVML).
GPU_MEMORY_LIMIT_MB = 4096
# How many sandboxes of one grader share one GPU, each under its own cap; sandboxes past
# GPUs x this train on the CPU (`coursekit grade --jobs N` says how many did).
GPU_SANDBOXES_PER_DEVICE = 4

# --- what students see of the grading, and when -----------------------------------
# Gradescope's visibility values: "visible" (at once), "after_due_date",
# "after_published" (once the instructor publishes grades) or "hidden" (never).
# "public": the line saying the work was graded, the isolation level that graded it.
# "hidden": each hidden test's verdict lines, the per-question scores and the total.
# Both `coursekit grade`'s results.json and the autograder's (otter run, Gradescope)
# follow it; report.md and grades.csv (the TA's files) show everything.
RESULTS_VISIBILITY = {"public": "visible", "hidden": "after_published"}

# --- the autograder --------------------------------------------------------------
AUTOGRADER_PYTHON_VERSION = "3.11"
# Pinned packages installed into the Gradescope image (otter adds its own defaults).
AUTOGRADER_REQUIREMENTS = [
    "torch==2.15.0",
    "torchvision==0.29.2",
    "numpy==2.4.6",
    "matplotlib==3.11.2",
    "tqdm==4.70.1",
    "pyseccomp==0.1.2",  # the sandbox's seccomp layer (libseccomp2 is in Gradescope's image)
    "nvidia-ml-py==13.615.71",  # the GPU memory check (NVML), on a GPU autograder image
]
# Whether the machines that run the autograder zip have an NVIDIA GPU (Gradescope's do
# not). The image's torch is PyTorch's CPU-only build (from AUTOGRADER_TORCH_CPU_INDEX,
# no CUDA stack, no NVML) unless DEVICE is "cuda", or "auto" with a GPU here; then it is
# the registry's CUDA build (several GB more). See coursekit/image.py.
AUTOGRADER_GPU = False
AUTOGRADER_TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Per-submission limits of the sandbox that runs student code (coursekit grade and
# the autograder alike): whole submission, one notebook cell, one call of student
# code on hidden inputs, a long call (the training check: about 0.1 s on one CPU
# thread since issue 19), resident memory.
TIME_LIMIT_S = 240
CELL_TIME_LIMIT_S = 60
CALL_TIME_LIMIT_S = 20
LONG_CALL_TIME_LIMIT_S = 120
MEMORY_LIMIT_MB = 3072
# What one grader needs beside its job's student code (its own process with torch and the
# checks, the sandbox's zygote), and the least a job may be given (a correct submission
# uses about 300 MB): in a container with a memory limit (Gradescope: 768 MB by default)
# each job gets at most what is left, and a container below GRADER_MEMORY_MB +
# MIN_JOB_MEMORY_MB is refused in one line before grading (docs/performance.md).
GRADER_MEMORY_MB = 1100
MIN_JOB_MEMORY_MB = 512
# Submissions larger than this are refused unread.
MAX_SUBMISSION_MB = 50

# The notebook cells that download data, train for minutes or plot from the training
# data carry this tag; otter skips them when grading.
IGNORE_TAG = "otter_ignore"
