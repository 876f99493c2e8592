"""Probe (a notebook cell): see another process's command line naming a notebook.

A classmate's grading (the test's decoy), a grader or otter: any process outside the job
whose command line holds `.ipynb`. `probe()` is True when the job can read one in /proc.
"""
import os


def probe() -> bool:
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if b".ipynb" in f.read():
                    return True
        except OSError:
            pass
    return False
