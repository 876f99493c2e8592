"""Attack (a notebook cell): leave a file behind in /tmp and in the working folder.

CK_NAME is the file's name; the test looks for it in the host's /tmp afterwards.
"""
import os
for _path in ("/tmp/" + CK_NAME, CK_NAME):
    with open(_path, "w") as _f:
        _f.write("left behind")
