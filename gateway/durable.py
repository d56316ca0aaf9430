"""Writing files so that they are whole and on disk, under their names, before anyone relies on them.

``write_files``: each is written under a temporary name, then all are fsynced, renamed, and
their folder fsynced: a reader never sees half a file, and after a crash a file is either
all there, named, or not there at all (the outbox Maildir). ``fill_files``: written in
place and flushed, for files whose content says whether it is whole (received messages).
Files written together share the disk flushes: on a journalling file system, the first
fsync commits the others' metadata too, so a batch costs about one flush, not one per file.
Plain ``os`` calls, since this runs for every message received and every mail sent.
"""

from __future__ import annotations

import os


def fill_files(files: list[tuple[str, bytes, bool]], folder: str) -> None:
    """``(path, data, new)`` for each file: ``data`` written from its start, over what is there.

    For files acknowledged by what they hold rather than by their name: a reader must be able
    to tell a whole file from one cut short (``spool`` writes a length and a checksum). A file
    that exists and is long enough only needs its data flushed; ``new`` ones need their folder
    flushed too, for their names.
    """
    descriptors = []
    try:
        for path, data, new in files:
            descriptors.append(os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if new else 0), 0o640))
            view, offset = memoryview(data), 0
            while offset < len(data):
                offset += os.pwrite(descriptors[-1], view[offset:], offset)
        for descriptor in descriptors:
            os.fdatasync(descriptor)
    finally:
        for descriptor in descriptors:
            os.close(descriptor)
    if any(new for _path, _data, new in files):
        _flush_folder(folder)


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
    _flush_folder(folder)


def _flush_folder(folder: str) -> None:
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
