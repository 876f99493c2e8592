"""Layer: one GPU for a sandbox — which one, its device files, its memory.

CUDA cannot be used in a process forked after an ancestor initialised it, so the trusted
side never does: GPUs are counted from the NVIDIA device nodes (`/dev/nvidia0`, ...) and
`/proc/driver/nvidia`, and whether the one a sandbox gets is usable is asked in a
throwaway child of the zygote (`probe`), which exits. The zygote refuses to fork jobs
once it holds the driver's device files (`driver_open`): a job of it could not use CUDA.
The job is the first process that keeps a CUDA context: it sees only its GPU's device
nodes, caps torch's allocator at `course_config.GPU_MEMORY_LIMIT_MB` before student code
(`start_job`), and the supervisor reads the job's GPU memory through NVML (`NvmlMemory`,
from `nvidia-ml-py`) and kills the job above that limit — an allocation the student
makes around torch's allocator does not escape it. When the job's PID namespace ends, the
driver frees everything the job held on the device.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import Any, Callable

DEVICE_SETTINGS = ("auto", "cpu", "cuda")
NODE = re.compile(r"nvidia(\d{1,3})")
SHARED_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")  # every GPU's jobs need these
PROC_GPUS = "/proc/driver/nvidia/gpus"


class DeviceError(RuntimeError):  # the engine turns it into "not graded" reports
    """The course asks for a device this machine does not have."""


@dataclass(frozen=True)
class GpuSlot:
    """The GPU one sandbox gets: `/dev/nvidia<minor>` plus the shared control nodes."""

    minor: int
    nodes: tuple[str, ...]  # host paths of the device nodes the job's view holds
    uuid: str = ""  # the GPU's UUID (CUDA_VISIBLE_DEVICES), "" where the driver did not say

    def as_json(self) -> dict[str, Any]:
        return {"minor": self.minor, "nodes": list(self.nodes), "uuid": self.uuid}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "GpuSlot":
        return cls(int(data["minor"]), tuple(str(n) for n in data["nodes"]), str(data.get("uuid", "")))

    def rescanned(self) -> "GpuSlot":
        """The same GPU with the shared nodes that exist now (the first `cuInit` on a
        freshly booted machine creates /dev/nvidia-uvm)."""
        return GpuSlot(self.minor, (self.nodes[0], *_shared_nodes(os.path.dirname(self.nodes[0]))), self.uuid)


def _is_char_device(path: str) -> bool:
    try:
        return stat.S_ISCHR(os.lstat(path).st_mode)
    except OSError:
        return False


def gpu_minors(dev: str = "/dev") -> list[int]:
    """The NVIDIA GPUs of this machine, by device node (`/dev/nvidiaN`), without CUDA."""
    try:
        names = os.listdir(dev)
    except OSError:
        return []
    return sorted(int(m.group(1)) for name in names if (m := NODE.fullmatch(name))
                  and _is_char_device(os.path.join(dev, name)))


def _shared_nodes(dev: str) -> list[str]:
    return [os.path.join(dev, n) for n in SHARED_NODES if _is_char_device(os.path.join(dev, n))]


def visible_minors(dev: str = "/dev", proc: str = PROC_GPUS) -> list[int]:
    """The GPUs this grader may use: every device node, narrowed by the grader's own
    CUDA_VISIBLE_DEVICES where it is set (as Slurm, dask-cuda or a TA does). Its UUIDs
    are matched exactly; its numbers are taken as device minors, which follow the PCI
    order that Slurm and `nvidia-smi` number by. Like CUDA, parsing stops at the first
    entry that is neither; an empty value means no GPU."""
    minors = gpu_minors(dev)
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return minors
    uuids = {gpu_uuid(m, proc): m for m in minors}
    chosen: list[int] = []
    for item in (x.strip() for x in env.split(",")):
        if item.isdigit() and int(item) in minors:
            minor = int(item)
        elif item.startswith("GPU-") and item in uuids:
            minor = uuids[item]
        else:
            break
        if minor not in chosen:
            chosen.append(minor)
    return chosen


def gpu_uuid(minor: int, proc: str = PROC_GPUS) -> str:
    """The UUID the driver gives GPU `minor` in /proc/driver/nvidia, or ""."""
    try:
        buses = os.listdir(proc)
    except OSError:
        return ""
    for bus in buses:
        try:
            with open(os.path.join(proc, bus, "information"), encoding="ascii", errors="replace") as f:
                info = f.read(8192)
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        if fields.get("Device Minor", "").strip() == str(minor):
            uuid = fields.get("GPU UUID", "").strip()
            return uuid if re.fullmatch(r"GPU-[0-9a-fA-F-]{8,64}", uuid) else ""
    return ""


def valid_setting(setting: object) -> str:
    """The training device setting; ValueError unless it is one of DEVICE_SETTINGS."""
    if setting not in DEVICE_SETTINGS:
        raise ValueError(f"course_config.DEVICE must be one of "
                         f"{', '.join(DEVICE_SETTINGS)}; it is {setting!r}")
    return str(setting)


def check_setting(setting: object, dev: str = "/dev") -> str:
    """The training device setting, checked: ValueError for a wrong value, DeviceError
    for "cuda" on a machine without an NVIDIA GPU (that this grader may use)."""
    valid_setting(setting)
    if setting == "cuda" and not visible_minors(dev):
        raise DeviceError("course_config.DEVICE is 'cuda', but this machine has "
                          f"no NVIDIA GPU (no {dev}/nvidia0 device node); set it to 'auto' to train "
                          "on the CPU where there is none")
    return str(setting)


def gpu_sandboxes(per_gpu: int, dev: str = "/dev", proc: str = PROC_GPUS) -> int:
    """How many sandboxes of this grader may train on a GPU: the GPUs it may use
    (`visible_minors`: CUDA_VISIBLE_DEVICES narrows them) times `per_gpu`. The one count
    of usable GPUs: the sandboxes (`slot_for`), the plan and the `--jobs` check use it."""
    return len(visible_minors(dev, proc)) * max(1, per_gpu)


def check_jobs(jobs: int, setting: str, per_gpu: int, dev: str = "/dev", proc: str = PROC_GPUS) -> None:
    """DeviceError when the setting is "cuda" and `jobs` sandboxes are more than this
    grader's GPUs take (the sandboxes beyond would refuse to start)."""
    slots = gpu_sandboxes(per_gpu, dev, proc)
    if setting == "cuda" and jobs > slots:
        raise DeviceError(
            f"course_config.DEVICE is 'cuda', but --jobs {jobs} needs more "
            f"GPU sandboxes than this machine has ({slots}: GPUs this grader may use x "
            f"course_config.GPU_SANDBOXES_PER_DEVICE); grade with --jobs {slots}")


def slot_for(sandbox_slot: int, setting: str, per_gpu: int, dev: str = "/dev",
             proc: str = PROC_GPUS) -> GpuSlot | None:
    """The GPU sandbox number `sandbox_slot` gets, or None (the CPU).

    Sandboxes 0, 1, ... go round the GPUs; each GPU takes at most `per_gpu` of them
    (each under its own memory cap), and the rest train on the CPU.
    """
    if setting == "cpu" or sandbox_slot >= gpu_sandboxes(per_gpu, dev, proc):
        return None
    minors = visible_minors(dev, proc)
    minor = minors[sandbox_slot % len(minors)]
    return GpuSlot(minor, (os.path.join(dev, f"nvidia{minor}"), *_shared_nodes(dev)), gpu_uuid(minor, proc))


def plan(jobs: int, setting: str, per_gpu: int, dev: str = "/dev") -> str:
    """One line for `coursekit grade`: where `jobs` sandboxes train ("" without GPUs)."""
    minors = visible_minors(dev)
    if setting == "cpu" or not minors:
        return ""
    on_gpu = min(jobs, gpu_sandboxes(per_gpu, dev))
    line = (f"GPUs: {len(minors)}, up to {per_gpu} sandboxes each: {on_gpu} of {jobs} graders "
            "train on a GPU")
    if on_gpu < jobs:
        line += f", {jobs - on_gpu} on the CPU"
    return line


def driver_open(nodes: tuple[str, ...] | list[str] = ()) -> str:
    """A device file of the NVIDIA driver this process holds open ("" when none): the
    driver keeps /dev/nvidiactl open from `cuInit` on, so a process that holds it has
    initialised CUDA (or NVML), and a child forked from it cannot use CUDA."""
    names = {os.path.basename(n) for n in nodes} | set(SHARED_NODES)
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return ""
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        name = os.path.basename(target)
        if name in names or NODE.fullmatch(name) or target in nodes:
            return target
    return ""


def probe(slot: GpuSlot) -> str:
    """Whether CUDA works on `slot` ("" when it does, else why not). Call it only in a
    throwaway child: it initialises CUDA in the calling process."""
    if slot.uuid:
        os.environ["CUDA_VISIBLE_DEVICES"] = slot.uuid
    else:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    import torch

    try:
        count = torch.cuda.device_count()
        if count < 1:
            return "CUDA finds no usable device"
        torch.zeros(1, device="cuda").add_(1)
        torch.cuda.synchronize()
    except Exception as exc:  # noqa: BLE001 - any failure: the CPU it is
        return f"CUDA fails: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
    return ""


CONTEXT_MB = 768  # CUDA's context and memory outside torch's allocator, which NVML counts


def start_job(memory_mb: int) -> str:
    """In the job, before student code: initialise CUDA on the one visible GPU and cap
    torch's allocator at `memory_mb` less the context's share (so that an allocation past
    the cap meets torch's clean error before the supervisor's NVML limit); returns "" or
    why the GPU cannot be used."""
    import torch

    try:
        torch.cuda.init()
        total = torch.cuda.get_device_properties(0).total_memory
        cap = max(memory_mb - CONTEXT_MB, memory_mb // 2) << 20
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), 0)
    except Exception as exc:  # noqa: BLE001
        return f"CUDA fails in the sandbox: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
    return ""


class NvmlMemory:
    """GPU memory per process, read through NVML (the trusted side: NVML creates no CUDA
    context). `available` is False where the NVML library or the GPU cannot be opened."""

    def __init__(self, slot: GpuSlot) -> None:
        self._handle = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            if slot.uuid:
                self._handle = pynvml.nvmlDeviceGetHandleByUUID(slot.uuid)
            else:
                for i in range(pynvml.nvmlDeviceGetCount()):
                    h = pynvml.nvmlDeviceGetHandleByIndex(i)
                    if pynvml.nvmlDeviceGetMinorNumber(h) == slot.minor:
                        self._handle = h
        except Exception:  # noqa: BLE001 - no NVML here: torch's cap alone
            self._handle = None

    @property
    def available(self) -> bool:
        return self._handle is not None

    def used_mb(self, pids: list[int]) -> float:
        """MB of GPU memory the processes `pids` hold (0 where NVML says nothing)."""
        if self._handle is None:
            return 0.0
        wanted, total = set(pids), 0
        try:
            procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except Exception:  # noqa: BLE001
            return 0.0
        for p in procs:
            if p.pid in wanted and isinstance(p.usedGpuMemory, int):
                total += p.usedGpuMemory
        return total / (1 << 20)


GpuMemory = Callable[[list[int]], float]  # pids -> MB of GPU memory they hold
