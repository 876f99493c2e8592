"""Attack: read other processes' folders under /proc (command lines, status).

Where the job has no PID namespace, /proc is the host's: another process's command line
names the grader's files, a classmate's notebook, a token passed as an argument. The
test runs a decoy whose command line holds __DECOY_WORD__; `probe()` is True when any
other process's cmdline or status could be read.
"""

import os


def probe() -> bool:
    seen = False
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        for name in ("cmdline", "status"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            seen = True
            if b"__DECOY_WORD__" in data:
                return True
    return seen
