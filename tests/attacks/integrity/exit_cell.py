# End the process that runs the cells.
import os
os._exit(3)
