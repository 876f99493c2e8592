# The next job: nothing of the last one is left (no /tmp/alive, only this process).
import os, time
time.sleep(0.5)
assert not os.path.exists('/tmp/alive')
assert len([p for p in os.listdir('/proc') if p.isdigit()]) == 1
