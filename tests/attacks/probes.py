"""The sandbox's attacks as notebook cells, and the host-side tools that see what they did.

The attack programs are files of isolation/ and local_services/ (each opens with what it
tries); the functions here turn one into a cell, with the values it reads (`CK_...`) as
lines above it, or into a *probe* (it sets LEAKED when it could read, see or reach
something it must not). The host side: a TCP listener and local services that record
what reaches them, and the scans that find an attack's survivor processes. Used by
tests/test_isolation.py (every front door), tests/test_local_services.py and
tests/test_container.py (the weaker levels).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.helpers import A as ASSIGNMENT, COURSE, SPAWNED, Spec, new_token

REPO = COURSE.root
A = ASSIGNMENT.name
CHECKS_PY = ASSIGNMENT.folder / "checks.py"  # the lab's hidden checks: what an attack would read
ENV_TOKEN = ("COURSEKIT_TEST_TOKEN", "s3cret")


# --- processes ---------------------------------------------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _marked_pids(marker: str) -> list[int]:
    """Live processes whose command line carries `marker` (zombies have none)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


def survivor_evidence(marker: str, token: str) -> list[str]:
    """Signs that an attack's re-forking process is still running: its command line seen in
    any of several scans (one scan can miss a process that changes pid every millisecond),
    or its heartbeat file in the host's /tmp still being touched."""
    beat = Path("/tmp") / f"ck-alive-{token}"
    before = beat.stat().st_mtime_ns if beat.exists() else None
    pids: set[int] = set()
    for _ in range(12):
        pids.update(_marked_pids(marker))
        time.sleep(0.05)
    after = beat.stat().st_mtime_ns if beat.exists() else None
    evidence = [f"process {pid} runs the survivor" for pid in sorted(pids)]
    if after is not None and after != before:
        evidence.append(f"{beat} is still being touched")
    return evidence


def end_survivors(marker: str, token: str) -> None:
    """End the attack's processes we started: ask (a stop file, for a survivor that sees the
    host's /tmp), then kill every pid that carries the marker until none is left."""
    stop = Path("/tmp") / f"ck-stop-{token}"
    stop.write_text("stop")
    deadline = time.time() + 1.5
    while time.time() < deadline and _marked_pids(marker):
        time.sleep(0.1)
    for _ in range(100):
        pids = _marked_pids(marker)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)
    for path in [stop, Path("/tmp") / f"ck-alive-{token}", *Path("/tmp").glob(f"ck-flag-{token}*")]:
        path.unlink(missing_ok=True)
    shutil.rmtree(f"/tmp/ck-payload-{token}", ignore_errors=True)


# --- the attacks -----------------------------------------------------------------------
# Every attack program is a file of tests/attacks/isolation/ (its docstring says what it
# attacks); the values a program reads (`CK_...`) come from the test, as lines above it.

ISOLATION_DIR = Path(__file__).parent / "isolation"

def attack_cell(name: str, **params) -> str:
    """The attack program tests/attacks/isolation/NAME.py as a notebook cell, after one
    line per parameter (`KEY = value`) that it reads."""
    preamble = "".join(f"{key} = {value!r}\n" for key, value in params.items())
    return preamble + (ISOLATION_DIR / f"{name}.py").read_text()


def read_probe(path: Path) -> str:
    """Reads a host file; leaked when it got the real bytes."""
    return attack_cell("read_host_file", CK_PATH=str(path), CK_SHA256=_sha(path))


def cache_probe(cache: Path) -> str:
    """Lists the bundle cache (its name carries the data seed) or reads any file in it."""
    files = [(str(p), _sha(p)) for p in sorted(cache.rglob("*"))
             if p.is_file() and p.stat().st_size < 32 << 20][:20]
    return attack_cell("read_bundle_cache", CK_CACHE=str(cache), CK_FILES=files)


# Another process's command line naming a notebook (the decoy's, a grader's, otter's).
PROC_CMDLINE_PROBE = attack_cell("proc_cmdline")
# The hidden checks loaded in (or importable by) the student's process.
CHECKS_LOADED_PROBE = attack_cell("checks_module_loaded")
# The grader's environment (os.environ, or the environ of any process it can read).
ENV_PROBE = attack_cell("environment", CK_NAME=ENV_TOKEN[0], CK_VALUE=ENV_TOKEN[1])


def network_probe(port: int) -> str:
    """Connects to the test's listener on the loopback and sends 2 KB."""
    return attack_cell("network", CK_PORT=port)


def flag_probe(token: str) -> str:
    """Finds the flag a survivor leaves where it could reach the hidden checks."""
    return attack_cell("survivor_flag", CK_TOKEN=token)


def snoop_probe(extra_roots: list[str]) -> str:
    """Looks for the autograder's files: around the working folder, /autograder, and a
    bounded walk of the filesystem for them by name."""
    return attack_cell("autograder_snoop", CK_EXTRA_ROOTS=extra_roots, CK_ASSIGNMENT=A)


def survivor_cell(marker: str, mode: str, token: str, lifetime: int = 60) -> str:
    """The attacker's cell: leave the survivor (survivor_process.py), which tampers with the
    folder of stored reports `mode`, or (mode "jobs") flags what it could read."""
    return attack_cell("leave_survivor", CK_MARKER=marker, CK_MODE=mode, CK_TOKEN=token,
                       CK_SURVIVOR_SRC=(ISOLATION_DIR / "survivor_process.py").read_text(),
                       CK_CHECKS=str(CHECKS_PY), CK_LIFETIME=lifetime)


def batch_tag(token: str) -> Spec:
    """A comment cell that marks a submission as this batch's (survivors only touch those)."""
    return {"lookup": f"# batch {token}"}


def fd_cell(marker_path: Path | None) -> str:
    """Writes into every inherited descriptor but 0/1/2: a pickle frame whose loading
    creates `marker_path` (multiprocessing's length-prefixed format), or junk."""
    return attack_cell("inherited_fds", CK_MARKER_PATH=None if marker_path is None else str(marker_path))


KILL_PARENT = attack_cell("kill_parent")


class Listener:
    """A TCP listener on the loopback that records every byte it is sent."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(3)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def read_probes(classmate: Path) -> dict[str, str]:
    """Class 6: what the student's process must not read or see (name -> probe body)."""
    return {
        "read_checks_py": read_probe(CHECKS_PY),  # reads the repository's hidden checks
        "read_source_notebook": read_probe(ASSIGNMENT.master),  # reads the master (tests, solutions)
        "read_solutions_notebook": read_probe(ASSIGNMENT.solutions_dir / f"{A}.ipynb"),  # reads the solutions
        "read_classmate_submission": read_probe(classmate),  # reads another submission of the batch
        "read_bundle_cache": cache_probe(REPO / ".cache"),  # lists/reads the data bundle cache
        "proc_cmdline": PROC_CMDLINE_PROBE,  # sees another process's command line naming a notebook
        "checks_module_loaded": CHECKS_LOADED_PROBE,  # finds the hidden checks in sys.modules / importable
    }


class Services:
    """A pathname and an abstract UNIX socket listening on the host, recording every byte
    a client sends, and a decoy process whose command line holds a word."""

    def __init__(self, folder: Path) -> None:
        token = new_token()
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # any user may reach the socket file, as under /var/run
        self.path = str(folder / "service.sock")
        self.abstract = f"ck-service-{token}"
        self.decoy_word = f"ck-decoy-{token}"
        self.received: list[bytes] = []
        self._socks = []
        for address in (self.path, "\0" + self.abstract):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(address)
            s.listen(8)
            self._socks.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()
        os.chmod(self.path, 0o777)  # world-writable: connect() needs write on the file
        self.decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)",
                                       self.decoy_word])
        SPAWNED.add(self.decoy.pid)

    def _serve(self, s: socket.socket) -> None:
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                self.received.append(conn.recv(4096))
            except OSError:
                self.received.append(b"<connected>")
            conn.close()

    def probe(self, name: str) -> str:
        """The attack file `name`, made a probe cell: LEAKED when its probe() says so."""
        text = (Path(__file__).parent / "local_services" / f"{name}.py").read_text()
        text = (text.replace("__SOCKET_PATH__", self.path).replace("__ABSTRACT_NAME__", self.abstract)
                .replace("__DECOY_WORD__", self.decoy_word))
        return text + "\n\ntry:\n    LEAKED = bool(probe())\nexcept BaseException:\n    LEAKED = False\n"

    def close(self) -> None:
        for s in self._socks:
            s.close()
        self.decoy.kill()
        self.decoy.wait()
        Path(self.path).unlink(missing_ok=True)
