# Kill every process the job may signal (as root outside a sandbox: the whole machine).
import os, signal
os.kill(-1, signal.SIGKILL)
