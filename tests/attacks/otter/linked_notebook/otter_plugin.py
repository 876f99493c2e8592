"""Attack: an upload whose notebook is a link into a folder the upload laid out like the
autograder's, with this file at `<that folder>/source/coursekit/otter_plugin.py`.

The plugin found "the zip's folder" by resolving the notebook's path, so it imported
this module as the zip's own plugin — in otter's process, as root on Gradescope — and
would have read the data and settings from the upload too. The test substitutes MARKER.
"""

import os

MARKER = "__MARKER__"

with open(MARKER, "w") as _out:
    _out.write(f"the upload's plugin ran as uid {os.getuid()}\n")


class TrustedGrading:
    def __init__(self, *args, **kwargs):
        pass
