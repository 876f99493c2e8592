# The lock that reserves the sandbox's uid must not reach student code (it could unlock it
# and let another grader share the uid); raises, so lookup scores 0, if the fd is inherited.
import os
for fd in os.listdir('/proc/self/fd'):
    try:
        target = os.readlink('/proc/self/fd/' + fd)
    except OSError:
        continue
    assert 'coursekit-uids' not in target, target
