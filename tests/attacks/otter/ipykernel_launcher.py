"""Attack: an upload's `ipykernel_launcher.py` becomes otter's kernel.

Jupyter starts a Python kernel as `python -m ipykernel_launcher -f CONNECTION_FILE`
with the submission folder as its working directory; `-m` searches the working
directory first, so this file runs instead of IPython's launcher — as the grader's
user, outside any sandbox. It records that it ran in MARKER (the test substitutes a
path of its own) and then starts the real launcher so nothing looks wrong.
"""

import os
import runpy
import sys

MARKER = "__MARKER__"

with open(MARKER, "w") as _out:
    _out.write(f"ipykernel_launcher.py ran as uid {os.getuid()} in {os.getcwd()}\n")

sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
sys.modules.pop("ipykernel_launcher", None)
runpy.run_module("ipykernel_launcher", run_name="__main__")
