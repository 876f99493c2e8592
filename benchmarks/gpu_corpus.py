"""The GPU acceptance run's grading part (issue 12): run it on a machine with a GPU.

1. Grades the whole test corpus twice in the sandbox, with the training check forced on
   the CPU and on CUDA, and compares every per-question score (they must be identical),
   with the time per submission each way and the device each report records.
2. Two GPU-memory attacks, graded on CUDA: one allocates past the cap through torch
   (stopped by torch's capped allocator), one first lifts torch's cap and then allocates
   (stopped by the supervisor's NVML check); each must get its one-line verdict.
3. Whether anything of the submissions stayed on the GPU: the device's used memory and
   compute processes (NVML) before and after.

    python benchmarks/gpu_corpus.py [--out DIR]      # writes DIR/gpu_corpus.json too

On a machine without a GPU it stops at once, saying so (`cuda` cannot be forced there).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coursekit import course  # noqa: E402
from coursekit.engine import Grader  # noqa: E402
from coursekit.sandbox import gpu  # noqa: E402
from tests.helpers import REF_LOOKUP, REF_RETRIEVE, SUBMISSIONS, Spec, write_corpus  # noqa: E402

COURSE = course.load()
A = COURSE.assignment()

# on the GPU only, forward allocates 3x the cap (and keeps it): torch's capped allocator refuses it
OVER_CAP = f"""
if img.is_cuda:
    self._hog = torch.empty({3 * COURSE.limits.gpu_memory_mb} << 20, dtype=torch.uint8, device=img.device)
X_q = self.img_mlp(img)
X_v = self.img_mlp(image_database)
attn_output, attn_output_weights = self.mha(X_q, X_v, X_v)
return torch.bmm(attn_output_weights, image_database), attn_output_weights
"""
# the same after lifting torch's cap: only the supervisor's NVML check stops it
CAP_LIFTED = """
if img.is_cuda:
    torch.cuda.set_per_process_memory_fraction(1.0)
""" + OVER_CAP


def _nvml_state() -> dict:
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        return {"used_mb": pynvml.nvmlDeviceGetMemoryInfo(h).used / (1 << 20),
                "processes": [p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h)]}
    except Exception as exc:  # noqa: BLE001
        return {"error": repr(exc)}


def _grade(names: list[str], folder: Path, device: str) -> dict[str, dict]:
    lab = A.lab()  # the course's grader (Course.grader), with the device forced
    grader = Grader(lab, lab.load_data(A.data_path()), A.points, COURSE.limits, device=device,
                    policy=COURSE.policy, rules=dataclasses.replace(COURSE.rules, assignment=A.name))
    out = {}
    try:
        grader.isolation  # start the sandbox before the clock
        for path in sorted(folder.glob("*.ipynb")):
            start = time.perf_counter()
            report = grader.grade_path(path)
            out[path.stem] = {"scores": report.scores, "device": report.device,
                              "seconds": round(time.perf_counter() - start, 2),
                              "feedback": report.feedback(), "message": report.message}
    finally:
        grader.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("gpu-out"))
    args = parser.parse_args()
    gpu.check_setting("cuda")  # no GPU: one clear error, nothing else runs
    args.out.mkdir(parents=True, exist_ok=True)
    before = _nvml_state()
    record: dict = {"nvml_before": before}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        release = A.release_dir / f"{A.name}.ipynb"
        write_corpus(release, folder)
        by_device = {}
        for device in ("cpu", "cuda"):
            by_device[device] = _grade(sorted(SUBMISSIONS), folder, device)
        cpu, cuda = by_device["cpu"], by_device["cuda"]
        differ = {n: (cpu[n]["scores"], cuda[n]["scores"]) for n in cpu if cpu[n]["scores"] != cuda[n]["scores"]}
        for name in sorted(cpu):
            print(f"{name:34s} cpu {cpu[name]['seconds']:5.2f}s {cpu[name]['device'] or '-':6s} "
                  f"cuda {cuda[name]['seconds']:5.2f}s {cuda[name]['device'] or '-':30s} "
                  f"{'SAME' if name not in differ else 'DIFFERENT'} {list(cuda[name]['scores'].values())}")
        n = len(cpu)
        print(f"\nper submission: cpu {sum(r['seconds'] for r in cpu.values()) / n:.2f} s, "
              f"cuda {sum(r['seconds'] for r in cuda.values()) / n:.2f} s; "
              f"identical scores: {n - len(differ)}/{n}")
        record.update(cpu=cpu, cuda=cuda, differ=differ)

        attacks = Path(tmp) / "attacks"
        from tests.helpers import make_notebook
        import nbformat

        attacks.mkdir()
        for name, forward in (("gpu_over_cap", OVER_CAP), ("gpu_cap_lifted", CAP_LIFTED)):
            nbformat.write(make_notebook(release, Spec(REF_LOOKUP, REF_RETRIEVE, forward)),
                           attacks / f"{name}.ipynb")
        record["attacks"] = _grade([], attacks, "cuda")
        for name, r in record["attacks"].items():
            print(f"{name}: training {r['scores']['training']}, device {r['device'] or '-'}, "
                  f"lines {r['feedback']['training']}, message {r['message']!r}")
    time.sleep(2)
    record["nvml_after"] = after = _nvml_state()
    print(f"GPU memory used before {before.get('used_mb')} MB, after {after.get('used_mb')} MB; "
          f"compute processes after: {after.get('processes')}")
    (args.out / "gpu_corpus.json").write_text(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()
