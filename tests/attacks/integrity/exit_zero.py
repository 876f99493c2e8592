# End the process with exit status 0 (success) in the middle of a call (a function body).
import os
os._exit(0)
