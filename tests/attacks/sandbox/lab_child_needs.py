# Not an attack: what a lab may use in a child at the namespaces level (a DataLoader's
# workers, multiprocessing's listeners): /proc/self and a UNIX socket. Exit status 3 (a
# crashed cell, seen by the supervisor) when either is refused.
import os, socket
pid = os.fork()
if pid == 0:
    ok = False
    try:
        with open("/proc/self/status") as f:
            ok = f"Pid:\t{os.getpid()}" in f.read()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("/tmp/lab.sock")
        s.close()
    except OSError:
        ok = False
    os._exit(0 if ok else 1)
if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
    os._exit(3)
