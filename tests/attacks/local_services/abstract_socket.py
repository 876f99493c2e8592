"""Attack: connect to a host service listening on an abstract UNIX socket.

Abstract names live in the network namespace, not the filesystem: where the job shares
the host's network namespace, Landlock scopes them only from ABI 6, and seccomp must
refuse the socket where Landlock is missing. The test listens at the abstract name
__ABSTRACT_NAME__; `probe()` is True when bytes got through.
"""

import socket


def probe() -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect("\0__ABSTRACT_NAME__")
    s.sendall(b"hello from the sandbox")
    s.close()
    return True
