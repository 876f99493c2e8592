# Kill the process that started the one running the cells.
import os, signal
os.kill(os.getppid(), signal.SIGKILL)
