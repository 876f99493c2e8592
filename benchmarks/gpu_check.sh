#!/usr/bin/env bash
# The GPU acceptance run (issue 12), in one go on a machine with an NVIDIA GPU:
#   1. calibration of the training check on CUDA -> docs/calibration-cuda.{md,png}
#   2. the training check's time on CUDA and on one CPU thread
#   3. the tests that cover the device (stand-ins and real): tests/test_gpu.py
#   4. the corpus graded in the sandbox on CPU and on CUDA: identical per-question scores,
#      time per submission each way; two GPU-memory attacks and their verdicts; the GPU's
#      memory and processes before and after (benchmarks/gpu_corpus.py)
#   5. `coursekit grade --jobs 2` with device "auto" (the summary says where each trained)
#   6. the release notebook run end to end on the GPU with the lab's 10-epoch recipe
# Needs: python3 with torch (+CUDA), nvidia-ml-py, MNIST_ROOT set, PYTHONPATH holding the
# project's other packages (nbformat, IPython, nbclient, otter...). Figures go to docs/gpu.md.
# Everything it writes for the record goes to ${OUT:-gpu-out}.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:${PYTHONPATH:-}"
py=${PYTHON:-python3}
step() { echo; echo "== $* ($(date +%T))"; }
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
  $py -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__)'
  $py -c 'from coursekit.sandbox import gpu; print("GPUs by device node:", gpu.gpu_minors(), gpu.gpu_uuid(0))'
  step "1. calibration (25 seeds)"
  time $py benchmarks/calibrate_training.py --seeds 25 --device cuda
  cp docs/calibration-cuda.md docs/calibration-cuda.png "$OUT"/ 2>/dev/null
  step "2. training check time"
  $py benchmarks/training_check_bench.py --runs 5 --device cuda
  $py benchmarks/training_check_bench.py --runs 5 --device cpu
  step "3. device tests"
  time $py -m pytest -q -p no:cacheprovider tests/test_gpu.py
  step "4. corpus on CPU and CUDA, memory attacks, leftovers"
  time $py benchmarks/gpu_corpus.py --out "$OUT"
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv
  step "5. coursekit grade, device auto"
  rm -rf /tmp/gpu-subs /tmp/gpu-grades && mkdir -p /tmp/gpu-subs
  cp solutions/attention_basics/attention_basics.ipynb /tmp/gpu-subs/solution.ipynb
  cp release/attention_basics/attention_basics.ipynb /tmp/gpu-subs/release.ipynb
  time $py -m coursekit grade /tmp/gpu-subs --out /tmp/gpu-grades --jobs 2 --quiet
  cat /tmp/gpu-grades/grades.csv
  cp /tmp/gpu-grades/feedback/solution/report.md "$OUT"/solution_report.md
  step "6. the release notebook end to end on the GPU, the lab's 10-epoch recipe"
  time $py benchmarks/student_run.py --recipe lab
  nvidia-smi --query-gpu=memory.used --format=csv
} 2>&1 | tee "$OUT/gpu_check.log"
