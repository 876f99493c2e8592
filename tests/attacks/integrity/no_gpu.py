# Graded on the CPU on every machine: a GPU must be invisible to student code (on a GPU
# machine this cell raises if it is not, and lookup, defined below it, scores 0).
import os, torch
assert os.environ.get('CUDA_VISIBLE_DEVICES') == ''
assert not torch.cuda.is_available()
