# Touch 50 MB more every 0.1 s (slower than the supervisor's sampling, faster than the
# cell's clock) until the memory limit stops the cell.
import time
hog = []
while True:
    hog.append(b'1' * 5 * 10**7)
    time.sleep(0.1)
