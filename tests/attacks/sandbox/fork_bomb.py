# Fork until the kernel refuses, forever: the process limit and the cell's clock stop it.
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
