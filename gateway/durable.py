"""Writing files so that they are whole and on disk, under their names, before anyone relies on them.

``write_files``: each is written under a temporary name, then all are fsynced, renamed, and
their folder fsynced: a reader never sees half a file, and after a crash a file is either
all there, named, or not there at all (the outbox Maildir). ``create_files`` and
``fill_files``: written in place and flushed, for files whose content says whether it is
whole (received messages).
Files written together share the disk flushes: on a journalling file system, the first
fsync commits the others' metadata too, so a batch costs about one flush, not one per file.
Plain ``os`` calls, since this runs for every message received and every mail sent.
"""

from __future__ import annotations

import os


def create_files(files: list[tuple[str, bytes]], folder: str) -> list[int]:
    """New files, their data and their names on disk; returned open, to be written over later."""
    descriptors: list[int] = []
    try:
        for path, data in files:
            descriptors.append(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640))
            _write_from_start(descriptors[-1], data)
        for descriptor in descriptors:
            os.fdatasync(descriptor)
        _flush_folder(folder)
    except BaseException:
        for descriptor in descriptors:
            os.close(descriptor)
        raise
    return descriptors


def fill_files(files: list[tuple[str, bytes, int | None]], folder: str) -> None:
    """``(path, data, descriptor)``: ``data`` written from the start of the file, over what is there,
    through ``descriptor`` when the file is open already (it is closed here), else into a new file.

    For files acknowledged by what they hold rather than by their name: a reader must be able
    to tell a whole file from one cut short (``spool`` writes a length and a checksum). Over a
    file that is long enough, only the data needs flushing, not the file system's journal.
    """
    opened = [(data, descriptor) for _path, data, descriptor in files if descriptor is not None]
    try:
        for data, descriptor in opened:
            _write_from_start(descriptor, data)
        for _data, descriptor in opened:
            os.fdatasync(descriptor)
    finally:
        for _data, descriptor in opened:
            os.close(descriptor)
    new = [(path, data) for path, data, descriptor in files if descriptor is None]
    if new:
        for descriptor in create_files(new, folder):
            os.close(descriptor)


def _write_from_start(descriptor: int, data: bytes) -> None:
    view, offset = memoryview(data), 0
    while offset < len(data):
        offset += os.pwrite(descriptor, view[offset:], offset)


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
