"""Attack (a notebook cell): plant symlinks to files of the host in the job folder, then die.

Where the job folder is a folder of the host (the `landlock` and `process` levels; at the
`namespaces` level it is a tmpfs of the job's own mount namespace), the trusted side
creates it, hands it to the sandbox uid and removes it when the job ends. Whatever does
that must never follow a link the job left there: a chown, chmod, read or write through
one reaches a file of the host the job could not touch itself. LINKS (name -> target) is
set by the test; the crash makes the grader restart the job in a fresh folder.
"""
import os

for _name, _target in LINKS.items():
    try:
        os.unlink(_name)
    except OSError:
        pass
    try:
        os.symlink(_target, _name)
    except OSError:
        pass
os._exit(3)
