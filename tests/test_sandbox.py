"""The sandbox package on its own: the channel's parser against hostile bytes, the job
protocol's ordering, and a real sandbox (a small job, no MNIST) for limits and leftovers.

Attacks through the three graders are in tests/test_isolation.py; these are the fast,
direct checks of each layer.
"""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from coursekit.sandbox import Limits, Sandbox, channel
from coursekit.sandbox.channel import ChannelError, FrameReader
from coursekit.sandbox.supervisor import JobResult, JobOutcome, _Progress
from tests.attacks import LOOP


def _frame(header: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(header)) + header + payload


# --- the channel: hostile bytes -----------------------------------------------------------

HOSTILE = {
    "invalid utf-8": _frame(b'{"t": "cell", "i": 0, "x": "\xff\xfe"}'),
    "deep json": _frame(b'{"t": "cell", "i": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    "call as a list": _frame(b'{"t": "call", "id": [1, 2]}'),
    "unknown kind": _frame(b'{"t": "pickle", "data": "x"}'),
    "extra field": _frame(b'{"t": "done", "evil": 1}'),
    "bool as index": _frame(b'{"t": "cell", "i": true}'),
    "header too long": struct.pack(">I", channel.MAX_HEADER + 1) + b"{",
    "header length zero": struct.pack(">I", 0),
    "array too large": _frame(json.dumps({"t": "out", "id": "x", "arrays": [
        ["a", "<f8", [1 << 20, 1 << 10]]]}).encode()),
    "object dtype": _frame(json.dumps({"t": "out", "id": "x", "arrays": [["a", "|O", [1]]]}).encode()),
    "negative shape": _frame(json.dumps({"t": "out", "id": "x", "arrays": [["a", "<f4", [-1]]]}).encode()),
    "bad array name": _frame(json.dumps({"t": "out", "id": "x", "arrays": [["../a", "<f4", [1]]]}).encode()),
    "too many dims": _frame(json.dumps({"t": "out", "id": "x", "arrays": [["a", "<f4", [1] * 9]]}).encode()),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_frames_are_refused_before_allocation(name):
    with pytest.raises(ChannelError):
        list(FrameReader().feed(HOSTILE[name]))


def test_the_byte_budget_is_enforced():
    reader = FrameReader(budget=1000)
    with pytest.raises(ChannelError, match="more data than allowed"):
        list(reader.feed(b"\0" * 1001))


def test_frames_round_trip_in_pieces():
    r, w = os.pipe()
    arrays = {"value": np.arange(6, dtype=np.float32).reshape(2, 3), "is_float": np.array(True)}
    channel.write_frame(w, "call", id="lookup_soft_single")
    channel.write_frame(w, "out", arrays=arrays, id="lookup_soft_single")
    os.close(w)
    data = os.read(r, 1 << 16)
    os.close(r)
    reader, frames = FrameReader(), []
    for i in range(len(data)):  # one byte at a time: frames complete only when whole
        frames += reader.feed(data[i:i + 1])
    assert [f.kind for f in frames] == ["call", "out"]
    assert np.array_equal(frames[1].arrays["value"], arrays["value"])
    assert frames[1].arrays["is_float"].dtype == np.bool_
    # 0-d arrays stay 0-d (np.ascontiguousarray made them 1-d: the training call's device
    # code and losses came back with shape (1,), and the device claim was never read)
    assert frames[1].arrays["is_float"].shape == ()


def test_frames_before_a_malformed_one_in_the_same_read_are_delivered():
    """A cell that writes junk on the channel is blamed only if its own `cell` frame is
    taken first. When that frame and the junk arrived in one read, the reader raised
    before returning it, so the cell before (the one defining lookup) was skipped on the
    restart: TestFdEscape's flake (lookup 0 for a submission whose junk cell came after)."""
    r, w = os.pipe()
    channel.write_frame(w, "cell", i=0)
    channel.write_frame(w, "cell", i=1)
    os.write(w, b"\x7f\xff\xff\xff" + b"junk" * 16)
    os.close(w)
    data = os.read(r, 1 << 16)
    os.close(r)
    taken = []
    with pytest.raises(ChannelError, match="bad length"):
        for frame in FrameReader().feed(data):
            taken.append(frame.fields["i"])
    assert taken == [0, 1]


# --- the job protocol: only forward --------------------------------------------------------

def _progress() -> _Progress:
    return _Progress({"cells": ["a", "b", "c"], "skip_cells": [], "calls": ["x", "y"], "skip_calls": []})


def _take(p: _Progress, **header) -> None:
    kind = header.pop("t")
    p.take(channel.Frame(kind, header), JobResult(JobOutcome()))


def test_a_repeated_cell_message_is_a_protocol_violation():
    """A cell that re-announces itself to reset its clock (measured: 45 s past a 10 s
    limit before) breaks the protocol instead."""
    p = _progress()
    _take(p, t="cell", i=0)
    with pytest.raises(ChannelError):
        _take(p, t="cell", i=0)


def test_results_only_for_the_call_in_progress():
    p = _progress()
    _take(p, t="cells_done")
    with pytest.raises(ChannelError):  # an answer for a call that was never announced
        p.take(channel.Frame("out", {"id": "y"}, {}), JobResult(JobOutcome()))
    _take(p, t="call", id="x")
    with pytest.raises(ChannelError):  # calls in the given order only
        _take(p, t="call", id="x")


def test_the_clock_is_the_supervisors():
    p = _progress()
    _take(p, t="cell", i=0)
    since = p.since
    time.sleep(0.01)
    _take(p, t="cell", i=2)
    assert p.since > since and p.current == ("cell", 2)


# --- a real sandbox -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def box():
    sandbox = Sandbox({"x": np.zeros(3, dtype=np.float32)}, slot=7, preload=["numpy"])
    sandbox.start()
    yield sandbox
    sandbox.close()


FAST = Limits(total_s=60, cell_s=10, call_s=5, long_call_s=5, memory_mb=1200)


CELLS = Path(__file__).parent / "attacks" / "sandbox"


def cell(name: str) -> str:
    """The cell tests/attacks/sandbox/NAME.py (each opens with what it does)."""
    return (CELLS / f"{name}.py").read_text()


def _run(box: Sandbox, *cells: str) -> JobResult:
    return box.run_job({"cells": list(cells), "calls": [], "training": {}}, FAST, lambda c: c)


def test_this_machine_gets_every_layer(box):
    """Kernel 6.18 with user namespaces, Landlock and seccomp: the full level, as root
    or not (CI and this machine)."""
    assert box.level == "namespaces"
    assert {"namespaces", "landlock", "seccomp"} <= set(box.layers)


def test_idle_forks_are_not_out_of_memory(box):
    """Memory is PSS: forks share their pages (before: 300 sleeping forks were 'out of
    memory'). 60 forks of the warm process add up to ~10 GB of resident sets here."""
    result = _run(box, cell("idle_forks"))
    assert result.outcome.skipped_cells == {} and result.outcome.failed_calls == {}


def test_a_fork_bomb_is_contained(box):
    result = _run(box, cell("fork_bomb"))
    assert result.outcome.skipped_cells == {0: "timed out"}
    assert _run(box, "x = 1").outcome.skipped_cells == {}  # the next job is unaffected


def test_real_memory_is_limited(box):
    """Pages really touched, 50 MB at a time: the supervisor stops the cell at the limit."""
    result = _run(box, cell("memory_hog"))
    assert result.outcome.skipped_cells == {0: "out of memory"}


def test_a_cell_cannot_buy_time_by_writing_progress(box):
    """Writing frames itself onto the channel (fd 3) ends the job as malformed."""
    result = _run(box, cell("forged_progress"))
    assert result.outcome.skipped_cells == {0: "sent malformed results to the grader"}


def test_nothing_survives_a_job(box):
    """A detached, pid-changing survivor of one job never reaches the next one."""
    _run(box, cell("detached_survivor"))
    result = _run(box, cell("survivor_gone"))
    assert result.outcome.skipped_cells == {} and result.outcome.failed_calls == {}


def test_a_runtime_the_sandbox_uid_cannot_reach_is_named():
    """Without namespaces, a clone in a closed folder (`mktemp -d`, a 0700 home) would
    leave the sandbox uid without its Python. With Landlock to confine it, the zygote opens
    the closed folder to the sandbox group for search (traverse.py); without (the process
    level) it says so instead of grading 0s."""
    import socket

    from coursekit.sandbox import traverse
    from coursekit.sandbox.zygote import Zygote

    import shutil
    import tempfile
    from pathlib import Path

    if os.geteuid() != 0:
        pytest.skip("needs root (a sandbox uid)")
    base = Path(tempfile.mkdtemp())  # pytest's own tmp folders are closed to other users
    base.chmod(0o755)
    closed = base / "closed"
    (closed / "site-packages").mkdir(parents=True)
    closed.chmod(0o700)
    a, b = socket.socketpair()
    zygote = Zygote(a, {"uid": 61234}, {})
    zygote.layers = ["seccomp", "uid"]
    zygote.view.binds = ["/usr", str(closed / "site-packages")]
    assert str(closed / "site-packages") in zygote.runtime_problem()
    zygote.layers = ["landlock", "seccomp", "uid"]
    assert zygote.runtime_problem() == ""
    assert zygote.groups == [traverse.SANDBOX_GID]
    assert (traverse.GROUP, 1, traverse.SANDBOX_GID) in traverse._entries(str(closed))
    zygote.groups = []
    closed.chmod(0o755)
    assert zygote.runtime_problem() == ""
    zygote.layers = ["namespaces", "landlock", "seccomp", "uid"]  # the view binds it: fine
    closed.chmod(0o700)
    assert zygote.runtime_problem() == ""
    a.close()
    b.close()
    shutil.rmtree(base)


def test_a_job_dies_with_its_zygote():
    """A zygote killed mid-job (out of memory, a crash) leaves no job running on its own:
    the next grader would never see it, and no limit would stop it."""
    import signal
    import threading

    if os.geteuid() != 0:
        pytest.skip("needs root (the job's uid tells its processes apart)")
    from coursekit.sandbox import SandboxError

    box = Sandbox({"x": np.zeros(3, dtype=np.float32)}, slot=9, preload=["numpy"])
    box.start()
    uid = box._claim.uid
    zygote = box._proc.pid
    threading.Timer(2.0, lambda: os.kill(zygote, signal.SIGKILL)).start()
    with pytest.raises(SandboxError):
        _run(box, LOOP)
    box.close()
    time.sleep(1.0)
    running = [e for e in os.listdir("/proc") if e.isdigit() and _owner(e) == uid
               and _state(e) not in ("Z", "X", None)]  # a zombie is dead, waiting to be reaped
    assert running == []


def _owner(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _state(pid: str) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def test_what_a_lab_may_use_in_a_child_at_the_namespaces_level(box):
    """In its own namespaces a job's children keep /proc/self and UNIX sockets (a
    DataLoader's workers, multiprocessing's listeners): only the weaker levels, which share
    the host's /proc and sockets, narrow them (tests/test_local_services.py)."""
    result = _run(box, cell("lab_child_needs"))
    assert box.level == "namespaces"
    assert result.outcome.skipped_cells == {} and result.outcome.failed_calls == {}
