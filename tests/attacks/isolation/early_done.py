"""Attack (a notebook cell): end one's own grading early with a well-formed `done` frame.

Written straight into the job's channel (fd 3) while the cells still run, in the channel's
own format (4-byte big-endian length, JSON header). A supervisor that took a `done`
outside the calls phase would stop the job before a single hidden call ran (0 points
everywhere, whatever the code); the protocol refuses it, the cell is skipped, and the
rest of the submission is graded as if the cell were not there.
"""
import json
import os
import struct

_header = json.dumps({"t": "done"}).encode()
os.write(3, struct.pack(">I", len(_header)) + _header)
