"""Attack (a notebook cell): fill the job's own tmpfs mounts.

/tmp, /job and /dev/shm of the job are tmpfs: files there are memory, in no process's
RSS or PSS. Each mount is capped (namespaces.TMP_SIZE, 256 MB) but three of them hold
750 MB, nearly twice the tests' 400 MB job limit, in files that are not even open.
"""
import os
import time

chunk = b"\1" * (10 << 20)
for folder in ("/tmp", "/job", "/dev/shm"):
    with open(os.path.join(folder, "fill.bin"), "wb") as f:
        for _ in range(25):  # 250 MB a mount
            f.write(chunk)
time.sleep(6)
