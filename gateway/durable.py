"""Writing a file so that it is whole and on disk before anyone may rely on it.

Written under a temporary name, fsynced, then renamed: a reader never sees half a file,
and after a crash the file is either all there or not there. Plain ``os`` calls, since
this runs for every message received and every mail written to the outbox Maildir.
"""

from __future__ import annotations

import os


def write_file(temporary: str, final: str, data: bytes) -> None:
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.rename(temporary, final)
