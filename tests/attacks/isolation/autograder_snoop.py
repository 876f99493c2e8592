"""Probe (a notebook cell): look for the autograder's files.

Around the working folder (otter's layout: ../source, ../submission, ../tests), under
/autograder, and in a bounded walk of the filesystem (CK_EXTRA_ROOTS first) for them by
name or content: the hidden checks, the bundled data, the settings, the master or the
solutions (a notebook named after CK_ASSIGNMENT holding solution or test markers).
`probe()` is True when the job could open one.
"""
import glob
import os
import sys
import time


def probe() -> bool:
    if "attention_checks" in sys.modules or "attention_basics.checks" in sys.modules:
        return True
    MARKERS = (b"def verdict", b"run_case", b"TrustedGrading", b"BEGIN SOLUTION", b"BEGIN TESTS",
               b"BEGIN HIDDEN TESTS", b"Model answer", b"hidden: true")
    NAMES = {"attention_checks.py", "attention_data.npz", "attention_config.json", "otter_config.json",
             "run_autograder"}
    own = os.path.realpath(os.getcwd())

    def content_hit(path):
        try:
            if os.path.islink(path) or not os.path.isfile(path):
                return False
            with open(path, "rb") as f:
                data = f.read(4 << 20)
        except OSError:
            return False
        return os.path.basename(path) in NAMES or any(m in data for m in MARKERS)

    for pattern in ["../*", "../source/*", "../source/files/*", "../submission/*", "../submission/tests/*",
                    "../tests/*", "/autograder/*", "/autograder/source/*", "/autograder/source/files/*",
                    "/autograder/submission/*", "/autograder/submission/tests/*"]:
        for path in glob.glob(pattern):
            if not os.path.realpath(path).startswith(own) and content_hit(path):
                return True

    def name_hit(folder, name):
        if name in NAMES or (name.startswith("bundle-") and name.endswith(".npz")):
            return True
        if name.endswith("-autograder.zip"):
            return True
        if name == "checks.py" and os.path.basename(folder) == "coursekit":
            return True
        return name.startswith(CK_ASSIGNMENT) and name.endswith(".ipynb")

    deadline = time.monotonic() + 25
    seen = set()
    for root in CK_EXTRA_ROOTS + ["/autograder", "/tmp", "/work", "/home", "/root", "/srv", "/opt", "/"]:
        for folder, dirs, files in os.walk(root):
            real = os.path.realpath(folder)
            # installed packages are public (otter's own templates hold a `run_autograder`);
            # the grader's copies inside them are masked, which other probes check
            if (real in seen or real.startswith(own) or real.startswith(("/proc", "/sys", "/dev"))
                    or "-packages" in real):
                dirs[:] = []
                continue
            seen.add(real)
            if time.monotonic() > deadline:
                return False
            for name in files:
                path = os.path.join(folder, name)
                if name_hit(folder, name) and (not name.endswith(".ipynb") or content_hit(path)):
                    try:
                        with open(path, "rb") as f:
                            f.read(1)
                        return True
                    except OSError:
                        pass
    return False
