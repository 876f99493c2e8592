# Leave a detached process that changes its pid every 50 ms and keeps writing /tmp/alive,
# to reach the next job of the same sandbox.
import os, time
if os.fork() == 0:
    os.setsid()
    while True:
        if os.fork():
            os._exit(0)
        open('/tmp/alive', 'w').write('x')
        time.sleep(0.05)
