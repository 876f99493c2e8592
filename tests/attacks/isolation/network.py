"""Probe (a notebook cell): reach the host's loopback.

Connects to the test's listener at 127.0.0.1:CK_PORT and sends 2 KB. `probe()` is True
when that worked (the listener also counts what arrived).
"""
import socket


def probe() -> bool:
    s = socket.create_connection(("127.0.0.1", CK_PORT), timeout=3)
    s.sendall(b"L" * 2048)
    s.close()
    return True
