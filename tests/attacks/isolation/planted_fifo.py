"""Attack (a notebook cell): plant a FIFO in the job folder, then die.

Anything of the trusted side that opened the files of a job's folder (to read a result
or a log, or to clean up) would block forever on a FIFO nobody writes: the whole batch
would hang. The crash makes the grader restart the job in a fresh folder.
"""
import os

os.mkfifo("planted.fifo")
os._exit(3)
