"""The training check's device (issue 12), on a machine without a GPU.

What can be checked here, with stand-ins where a GPU would be: the device setting
("auto" picks the CPU here, "cuda" without a GPU is one clear error), which GPU each
sandbox gets, the view holding exactly one GPU's device nodes (stand-in nodes made with
mknod), the GPU memory limit (a stand-in reader), and that no process that forks jobs
ever initialises CUDA (a stand-in `libcuda.so.1` that, like the driver, opens the control
device in `cuInit` and keeps it). The real GPU run is `benchmarks/gpu_check.sh`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import A, COURSE
from coursekit.sandbox import Limits, Sandbox, SandboxError, gpu, landlock, limits, namespaces, view

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "tests" / "standin"
INPUTS = {"x": np.zeros(3, dtype=np.float32)}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="stand-in device nodes need mknod (root)")


# --- the setting and the slots -----------------------------------------------------------

def test_auto_is_the_default_and_picks_the_cpu_here():
    assert COURSE.device == "auto"
    assert gpu.gpu_minors() == []  # this machine: no /dev/nvidia0
    assert gpu.slot_for(0, "auto", 4) is None


def test_cuda_without_a_gpu_is_one_clear_error():
    with pytest.raises(gpu.DeviceError) as err:
        gpu.check_setting("cuda")
    assert str(err.value) == (
        "course_config.DEVICE is 'cuda', but this machine has no NVIDIA GPU "
        "(no /dev/nvidia0 device node); set it to 'auto' to train on the CPU where there is none")
    with pytest.raises(gpu.DeviceError):
        Sandbox(INPUTS, device="cuda")


def test_a_wrong_setting_is_refused():
    with pytest.raises(ValueError, match="must be one of auto, cpu, cuda; it is 'gpu'"):
        gpu.check_setting("gpu")


def test_slots_go_round_the_gpus_then_to_the_cpu(fake_dev):
    assert gpu.gpu_minors(str(fake_dev)) == [0, 1]
    got = [gpu.slot_for(i, "auto", 2, dev=str(fake_dev)) for i in range(5)]
    assert [s.minor if s else None for s in got] == [0, 1, 0, 1, None]
    assert got[1].nodes == (f"{fake_dev}/nvidia1", f"{fake_dev}/nvidiactl", f"{fake_dev}/nvidia-uvm")
    assert gpu.slot_for(0, "cpu", 2, dev=str(fake_dev)) is None
    assert gpu.check_setting("cuda", dev=str(fake_dev)) == "cuda"


def test_the_plan_says_how_many_graders_train_on_the_cpu(fake_dev):
    assert gpu.plan(3, "auto", 4, dev=str(fake_dev)) == "GPUs: 2, up to 4 sandboxes each: 3 of 3 graders train on a GPU"
    assert gpu.plan(10, "auto", 4, dev=str(fake_dev)) == (
        "GPUs: 2, up to 4 sandboxes each: 8 of 10 graders train on a GPU, 2 on the CPU")
    assert gpu.plan(10, "cpu", 4, dev=str(fake_dev)) == ""
    assert gpu.plan(2, "auto", 4) == ""  # no GPU here: nothing to say


def test_the_graders_own_cuda_visible_devices_narrows_the_gpus(fake_dev, tmp_path, monkeypatch):
    """A grader given one GPU (Slurm, dask-cuda, a TA) uses that one only."""
    proc = tmp_path / "gpus"
    for bus, minor in (("0000:01:00.0", 0), ("0000:02:00.0", 1)):
        (proc / bus).mkdir(parents=True)
        (proc / bus / "information").write_text(f"GPU UUID: \t GPU-{minor}1111111-2222-3333-4444-555555555555\n"
                                                f"Device Minor: \t {minor}\n")
    for value, want in (("1", [1]), ("GPU-11111111-2222-3333-4444-555555555555", [1]), ("", []),
                        ("1,junk,0", [1]), ("0,1,0", [0, 1]), ("7", [])):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        assert gpu.visible_minors(str(fake_dev), str(proc)) == want, value
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert gpu.slot_for(0, "auto", 4, dev=str(fake_dev), proc=str(proc)).minor == 1
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu.visible_minors(str(fake_dev), str(proc)) == [0, 1]


def test_the_public_check_knows_torchs_device_words_as_the_grader_does():
    from attention_basics import calls, public_checks

    assert public_checks.MIXED_DEVICES == calls._MIXED.pattern


def test_a_gpu_that_fails_at_start_is_a_not_graded_report(monkeypatch, tmp_path):
    """'cuda' asked for and the GPU fails its probe: every submission's report says so
    (an error row, retried next time), never an exception in the grader."""
    grader = COURSE.grader(A)

    def start(probe_only: bool = False) -> None:
        raise gpu.DeviceError("course_config.DEVICE is 'cuda', but the GPU does not work here")

    monkeypatch.setattr(grader.sandbox, "start", start)
    sub = tmp_path / "a.ipynb"
    import nbformat

    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), sub)
    report = grader.grade_path(sub)
    assert (report.status, report.message) == (
        "error", "not graded: course_config.DEVICE is 'cuda', but the GPU does not work here")
    assert report.total == 0


def test_the_uuid_comes_from_the_drivers_proc_files(tmp_path):
    for bus, minor, uuid in (("0000:01:00.0", 0, "GPU-11111111-2222-3333-4444-555555555555"),
                             ("0000:02:00.0", 1, "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")):
        (tmp_path / bus).mkdir()
        (tmp_path / bus / "information").write_text(
            f"Model: \t\t NVIDIA H200\nIRQ:   \t\t 42\nGPU UUID: \t {uuid}\nDevice Minor: \t {minor}\n")
    assert gpu.gpu_uuid(1, str(tmp_path)) == "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert gpu.gpu_uuid(5, str(tmp_path)) == ""
    (tmp_path / "0000:02:00.0" / "information").write_text("GPU UUID: ; rm -rf /\nDevice Minor: 1\n")
    assert gpu.gpu_uuid(1, str(tmp_path)) == ""  # not a UUID: not passed on


# --- what the job sees ---------------------------------------------------------------------

def _in_child(fn) -> dict:
    """Run `fn` in a forked child (its own namespaces, if it makes them); its JSON answer."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            answer = fn()
        except BaseException as exc:  # noqa: BLE001
            answer = {"error": repr(exc)}
        os.write(w, json.dumps(answer).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def _opens(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_RDWR))
        return True
    except OSError:
        return False


@needs_root
def test_the_view_holds_exactly_one_gpu(fake_dev):
    """The namespaces view of a job on GPU 1: its node and the shared ones, usable
    (a device node needs a mount without nodev), and not GPU 0's."""
    slot = gpu.slot_for(1, "auto", 4, dev=str(fake_dev))
    seen = view.with_gpu(view.runtime_view(), slot.nodes)

    def job() -> dict:
        namespaces.enter(as_root=True)
        return _in_child(lambda: (namespaces.build_root(seen, 0, 0), {
            "dev": sorted(n for n in os.listdir("/dev") if n.startswith("nvidia")),
            "opens": {n: _opens(f"/dev/{n}") for n in ("nvidia1", "nvidiactl", "null")},
            "sys": os.path.isdir("/sys/class")})[1])

    got = _in_child(job)
    assert got == {"dev": ["nvidia-uvm", "nvidia1", "nvidiactl"],
                   "opens": {"nvidia1": True, "nvidiactl": True, "null": True}, "sys": True}, got


@needs_root
def test_landlock_lets_the_job_open_only_its_gpu(fake_dev):
    """Without namespaces (the landlock level) every node is on the host: Landlock
    allows the slot's nodes only."""
    if landlock.abi_version() < 1:
        pytest.skip("no Landlock here")
    slot = gpu.slot_for(0, "auto", 4, dev=str(fake_dev))

    def job() -> dict:
        landlock.restrict(["/usr", "/proc"], list(slot.nodes))
        return {n: _opens(f"{fake_dev}/{n}") for n in ("nvidia0", "nvidiactl", "nvidia1")}

    assert _in_child(job) == {"nvidia0": True, "nvidiactl": True, "nvidia1": False}


# --- CUDA is never initialised where jobs are forked ----------------------------------------

@pytest.fixture
def standin_driver(tmp_path, fake_dev, monkeypatch):
    """A stand-in libcuda.so.1 on LD_LIBRARY_PATH whose cuInit opens the stand-in
    nvidiactl and keeps it, as the driver does; its calls are logged with their pid."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for the stand-in driver")
    lib = tmp_path / "lib"
    lib.mkdir()
    log = tmp_path / "cuda-calls.log"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib / "libcuda.so.1"), str(STANDIN / "libcuda.c"),
                    f'-DCTL="{fake_dev}/nvidiactl"', f'-DLOG="{log}"'], check=True)
    os.chmod(tmp_path, 0o755)
    monkeypatch.setenv("LD_LIBRARY_PATH", str(lib))
    return {"log": log, "ctl": f"{fake_dev}/nvidiactl",
            "slot": gpu.slot_for(0, "auto", 4, dev=str(fake_dev))}


def _holds(pid: int, path: str) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    return any(os.readlink(f"{fd_dir}/{fd}") == path for fd in os.listdir(fd_dir)
               if os.path.exists(f"{fd_dir}/{fd}") or os.path.islink(f"{fd_dir}/{fd}"))


def _cuinit_pids(log: Path) -> list[int]:
    return [int(line.split()[0]) for line in log.read_text().splitlines()] if log.exists() else []


def test_the_gpu_is_tried_in_a_throwaway_child(standin_driver):
    """`auto` with a GPU that does not work: the zygote asks CUDA in a child that exits
    (the stand-in's cuInit ran there, not in the zygote), keeps no driver file open, and
    the jobs train on the CPU, saying why."""
    box = Sandbox(INPUTS, slot=11, preload=["numpy", "torch"], gpu=standin_driver["slot"])
    box.start()
    try:
        zygote = box._proc.pid
        assert box.device == "cpu"
        assert box.gpu_note == "CUDA finds no usable device"
        callers = _cuinit_pids(standin_driver["log"])
        assert len(callers) == 1 and callers[0] != zygote, callers  # the probe's own child
        assert not _holds(zygote, standin_driver["ctl"])
        assert not _holds(os.getpid(), standin_driver["ctl"])  # nor the trusted grader
        result = box.run_job({"cells": ["import torch\nx = torch.ones(2)"], "calls": [], "training": {}},
                             Limits(total_s=60, cell_s=20, memory_mb=1200), lambda c: c)
        assert result.outcome.skipped_cells == {}
    finally:
        box.close()


def test_a_zygote_that_initialised_cuda_refuses_to_fork_jobs(standin_driver):
    """The fork-after-CUDA mistake (the zygote asks torch for the GPU count itself, as the
    grader once did before forking): every job would inherit a CUDA state it cannot use.
    The sandbox refuses to start, saying why, instead of failing every training check."""
    box = Sandbox(INPUTS, slot=12, preload=["numpy", "torch", "tests.standin.cuda_in_zygote"],
                  gpu=standin_driver["slot"])
    with pytest.raises(SandboxError) as err:
        box.start()
    box.close()
    assert "the CUDA driver was initialised in the sandbox's zygote before it forks its jobs" in str(err.value)
    assert f"({standin_driver['ctl']} is open)" in str(err.value)


# --- the GPU memory limit ---------------------------------------------------------------------

def _rss_mb(pids: list[int]) -> float:
    """Stand-in for NVML's per-process GPU memory: the processes' resident memory."""
    return limits._rss_mb(pids)


def test_a_job_over_its_gpu_memory_is_stopped_with_its_verdict():
    box = Sandbox(INPUTS, slot=13, preload=["numpy"], gpu=None, gpu_memory=_rss_mb)
    try:
        # a fresh job's resident memory is ~300 MB here (torch imported, pages shared)
        cells = ["import numpy as np, time\nhog = np.ones(1000 << 17)\ntime.sleep(8)", "ok = 1"]
        limits = Limits(total_s=60, cell_s=20, memory_mb=2500, gpu_memory_mb=700)
        result = box.run_job({"cells": cells, "calls": [], "training": {}}, limits, lambda c: c)
        assert result.outcome.skipped_cells == {0: "used more than 700 MB of GPU memory"}
        assert result.outcome.failed_calls == {}  # the next cell ran, in a fresh sandbox
    finally:
        box.close()


# --- coursekit grade ---------------------------------------------------------------------------

def test_grade_with_cuda_forced_here_stops_with_one_line(tmp_path, monkeypatch, capsys):
    """`cuda` on this machine (no GPU): exit 2, one line, nothing graded or written."""
    import dataclasses

    from coursekit import cli, course

    cuda = dataclasses.replace(COURSE, device="cuda")
    monkeypatch.setattr(course, "load", lambda *args, **kwargs: cuda)
    sub = tmp_path / "a.ipynb"
    sub.write_text("{}")
    assert cli.main(["grade", str(sub), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["coursekit grade: course_config.DEVICE is 'cuda', but this machine "
                   "has no NVIDIA GPU (no /dev/nvidia0 device node); set it to 'auto' to train on the "
                   "CPU where there is none"]
    assert not (tmp_path / "out" / "grades.csv").exists()
