"""Not an attack: what the lab itself may use must keep working at every level.

A `socketpair` (multiprocessing's pipes) and the job's own `/proc/self` (its status, its
open descriptors). `probe()` is True when both work, which earns this notebook full
marks; a sandbox that broke either would cost it the lookup points.
"""

import os
import socket


def probe() -> bool:
    a, b = socket.socketpair()
    a.sendall(b"ping")
    ok = b.recv(4) == b"ping"
    a.close()
    b.close()
    with open("/proc/self/status") as f:
        ok = ok and f"Pid:\t{os.getpid()}" in f.read()
    return ok and len(os.listdir("/proc/self/fd")) > 0
