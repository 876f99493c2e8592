"""Weaker levels close the host's local services (issue 18, part 4).

Where namespaces are refused (an unprivileged Docker container, an Ubuntu laptop) the job
shares the host's filesystem and network namespace. There, before, student code connected
to a world-writable pathname UNIX socket of the host and sent bytes (Landlock up to ABI 7
does not govern `connect()` to pathname sockets, and seccomp allowed AF_UNIX), and read
other processes' command lines under /proc. The probes are real files in
tests/attacks/local_services/; each is graded by `coursekit grade` at the `landlock` level
(COURSEKIT_REFUSE=namespaces) and, for the sockets, at the `process` level too.

A probe that is kept out scores lookup 0 and the rest of the reference (7 of 12); a leak
scores 12. `lab_needs` (a socketpair, /proc/self) must keep its 12 at every level.
Run inside `unshare --pid --fork --mount-proc` as root, like tests/test_isolation.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.attacks.probes import Services
from tests.helpers import (FULL, GATED_LOOKUP, NOT_LEAKED, REF_FORWARD, REF_RETRIEVE, Spec, ZERO, grade, new_token,
                           ref, write_nb)

pytestmark = pytest.mark.slow  # end to end; `make test-fast` skips it



def _spec(cell: str) -> Spec:
    return Spec(GATED_LOOKUP, REF_RETRIEVE, REF_FORWARD, after={"lookup": cell})


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    found = Services(Path(f"/tmp/ck-services-{new_token()}"))
    yield found
    found.close()


LEVELS = {"landlock": "namespaces", "process": "namespaces,landlock"}
PROBES = {"landlock": ["unix_path_socket", "abstract_socket", "proc_other_processes", "lab_needs"],
          "process": ["unix_path_socket", "abstract_socket", "lab_needs"]}


@pytest.fixture(scope="module", params=list(LEVELS))
def batch(request, services, tmp_path_factory):
    """One `coursekit grade` of every probe, the reference and the stub at one level."""
    level = request.param
    subs = tmp_path_factory.mktemp(f"services-{level}") / "subs"
    for name in PROBES[level]:
        write_nb(subs, name, _spec(services.probe(name)))
    write_nb(subs, "reference", ref())
    write_nb(subs, "stub", Spec())
    before = len(services.received)
    run = grade(subs, subs.parent / "out", env_extra={"COURSEKIT_REFUSE": LEVELS[level]})
    from coursekit.cli import CANNOT_GRADE

    if level == "process" and run.rc == CANNOT_GRADE and "cannot read the Python runtime" in run.stderr:
        # a clone under a closed folder (mktemp -d): by design nothing confines a way through
        pytest.skip(f"the process level refuses a runtime other users cannot read: {run.stderr.strip()}")
    return level, run, services.received[before:]


def test_graded_at_the_weaker_level(batch):
    level, run, _ = batch
    assert run.rc == 0 and not run.timed_out, run.why()
    assert {row["isolation"] for row in run.rows.values()} == {level}, run.rows
    assert run.scores("reference") == FULL
    assert run.scores("stub") == ZERO


def test_no_local_service_of_the_host_is_reached(batch):
    level, run, received = batch
    assert run.scores("unix_path_socket") == NOT_LEAKED, f"{level}: connected to a host socket file"
    assert run.scores("abstract_socket") == NOT_LEAKED, f"{level}: connected to a host abstract socket"
    assert received == [], f"{level}: the host's services received {received!r}"


def test_other_processes_are_not_readable_under_proc(batch):
    level, run, _ = batch
    if "proc_other_processes" not in PROBES[level]:
        pytest.skip("the process level has no layer that can hide /proc (docs/security.md)")
    assert run.scores("proc_other_processes") == NOT_LEAKED


def test_what_the_lab_needs_keeps_working(batch):
    level, run, _ = batch
    assert run.scores("lab_needs") == FULL, f"{level}: a socketpair or /proc/self stopped working"
