"""Probe (a notebook cell): read, then append to, a private file of the grading user.

CK_SECRET is the grading user's ~/secret.txt (mode 0600), CK_SECRET_TEXT its content.
`probe()` is True when the job could read it; either way it tries to append a line.
"""


def probe() -> bool:
    leaked = False
    try:
        with open(CK_SECRET) as f:
            leaked = CK_SECRET_TEXT in f.read()
    except OSError:
        pass
    try:
        with open(CK_SECRET, "a") as f:
            f.write("PWNED\n")
    except OSError:
        pass
    return leaked
