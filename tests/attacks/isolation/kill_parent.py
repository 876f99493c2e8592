"""Attack (a notebook cell): kill the process that started the job's.

Wherever the job runs, its parent is part of the grader (or of the sandbox that the grader
started): a grader that dies with it would lose the rest of the batch.
"""
import os, signal
os.kill(os.getppid(), signal.SIGKILL)
