"""Attack: connect to a local service of the host through its pathname UNIX socket.

Think `/var/run/docker.sock`, D-Bus or a database listening on a world-writable socket
file. Landlock (ABI <= 7) does not govern `connect()` to a pathname socket, so where the
job shares the host's filesystem (the `landlock` and `process` levels) only seccomp can
refuse it. The test puts a listener at __SOCKET_PATH__; `probe()` is True when bytes got
through.
"""

import socket


def probe() -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect("__SOCKET_PATH__")
    s.sendall(b"GET /containers/json HTTP/1.0\r\n\r\n")
    s.close()
    return True
