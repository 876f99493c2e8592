# Not an attack: 60 idle forks of the warm process share their pages (PSS), so they are
# not "out of memory" although their resident sets add up to ~10 GB.
import os, time
kids = []
for _ in range(60):
    pid = os.fork()
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
