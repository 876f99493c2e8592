"""Attack (a notebook cell): leave a process behind that outlives the job.

Double fork, new session, stdio on /dev/null, then exec survivor_process.py (its source is
CK_SURVIVOR_SRC) with the test's CK_MARKER (in its command line, so that the test can find
it), CK_MODE, CK_TOKEN, a payload folder, CK_CHECKS (the repository's hidden checks) and
CK_LIFETIME seconds. The cell itself returns at once.
"""
import json, os, sys, time
MARKER, MODE, TOKEN = CK_MARKER, CK_MODE, CK_TOKEN
payload = "/tmp/ck-payload-" + TOKEN
try:
    os.makedirs(payload, exist_ok=True)
except OSError:
    import tempfile
    payload = tempfile.mkdtemp()
_pid = os.fork()
if _pid == 0:
    try:
        os.setsid()
        if os.fork() == 0:
            _fd = os.open(os.devnull, os.O_RDWR)
            for _i in (0, 1, 2):
                os.dup2(_fd, _i)
            os.execv(sys.executable, [sys.executable, "-S", "-c", CK_SURVIVOR_SRC, MARKER, MODE,
                                      TOKEN, payload, CK_CHECKS, str(CK_LIFETIME)])
    finally:
        os._exit(0)
os.waitpid(_pid, 0)
