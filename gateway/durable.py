"""Writing files so that they are whole and on disk, under their names, before anyone relies on them.

Each is written under a temporary name, then all are fsynced, renamed, and their folder
fsynced: a reader never sees half a file, and after a crash a file is either all there,
named, or not there at all. Files written together share the disk flushes: on a
journalling file system, the first fsync commits the others' metadata too, so a batch
costs about one flush, not one per file. Plain ``os`` calls, since this runs for every
message received and every mail written to the outbox Maildir.
"""

from __future__ import annotations

import os


def write_files(files: list[tuple[str, str, bytes]], folder: str) -> None:
    """``(temporary path, final path, data)`` for each file; the final paths are all in ``folder``."""
    descriptors = []
    try:
        for temporary, _final, data in files:
            descriptors.append(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
            view = memoryview(data)
            while view:
                view = view[os.write(descriptors[-1], view):]
        for descriptor in descriptors:
            os.fsync(descriptor)
    finally:
        for descriptor in descriptors:
            os.close(descriptor)
    for temporary, final, _data in files:
        os.rename(temporary, final)
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
