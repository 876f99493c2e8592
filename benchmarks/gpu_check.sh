#!/usr/bin/env bash
# The CUDA checks, run in one go on a lent GPU machine (see README "GPU"):
#   1. calibration of the training check on CUDA -> docs/calibration-cuda.{md,png}
#   2. the training check's time on CUDA and on the CPU
#   3. the unit tests of the checks, the corpus table and the integrity attacks on a GPU
#      machine (grading must give the CPU's scores there: student code sees no GPU)
#   4. `coursekit grade` of the solution and the release on a GPU machine
# Needs: python3 with torch (+CUDA), MNIST_ROOT set, PYTHONPATH holding nbformat and IPython.
# Everything it writes for the record goes to ${OUT:-gpu-out}.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:${PYTHONPATH:-}"
py=${PYTHON:-python3}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $py -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'
  echo "== 1. calibration (25 seeds)"
  time $py benchmarks/calibrate_training.py --seeds 25 --device cuda
  cp docs/calibration-cuda.md docs/calibration-cuda.png "$OUT"/ 2>/dev/null
  echo "== 2. training check time"
  $py benchmarks/training_check_bench.py --runs 5 --device cuda
  $py benchmarks/training_check_bench.py --runs 5 --device cpu
  echo "== 3. checks, corpus and attacks on the GPU machine (graded on its CPU)"
  time $py -m pytest -q -p no:cacheprovider tests/test_checks.py tests/test_corpus.py tests/test_integrity.py
  echo "== 4. coursekit grade on the GPU machine"
  mkdir -p /tmp/gpu-subs
  cp solutions/attention_basics/attention_basics.ipynb /tmp/gpu-subs/solution.ipynb
  cp release/attention_basics/attention_basics.ipynb /tmp/gpu-subs/release.ipynb
  time $py -m coursekit grade /tmp/gpu-subs --out /tmp/gpu-grades --jobs 2 --quiet
  cat /tmp/gpu-grades/grades.csv
  cp /tmp/gpu-grades/feedback/solution/report.md "$OUT"/solution_report.md
} 2>&1 | tee "$OUT/gpu_check.log"
