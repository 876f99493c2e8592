"""Attack (a notebook cell): hold memory outside every process's resident set.

memfd files are written with write(2), kept open and never mapped: their pages are in
no process's RSS or PSS, so a supervisor that sums the job's PSS sees nothing. HOLD_MB
(twice the tests' job limit) is held, then the cell sleeps and ends as if nothing
happened.
"""
import os
import time

HOLD_MB = 1440
chunk = b"\1" * (16 << 20)
held = []
for i in range(HOLD_MB // 240):
    fd = os.memfd_create(f"held{i}")
    for _ in range(15):  # 240 MB, written, not mapped
        os.write(fd, chunk)
    held.append(fd)
time.sleep(6)
