"""The fork-after-CUDA mistake, as a preload module of the sandbox's zygote (tests only):
something in the process that forks every job asks the CUDA driver how many GPUs there
are (torch's raw count, which does not look at CUDA_VISIBLE_DEVICES first), and so
initialises it."""

import torch

torch._C._cuda_getDeviceCount()
