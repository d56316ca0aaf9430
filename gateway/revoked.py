"""The reply addresses the gateway no longer takes: those of participants removed from their request.

The SMTP listener has no database (it stays small, and answers without waiting for one), yet the
address of a participant removed from a request must get 550 at RCPT (CONTRACT §4). So the serving
process writes the ids of the participants no longer active into ``<data>/revoked-participants``
(at start and at every sweep, when they changed), and each listener reads that file again when it
changed, looking at most once a second. Until then, such a mail is still taken, and applied as
one from an unverified sender.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from gateway.durable import write_files

FILE = "revoked-participants"


def publish(data_dir: Path, participant_ids: Iterable[int]) -> bool:
    """Write the ids, one a line, when they are not what the file holds; whether it was written."""
    content = "".join(f"{participant_id}\n" for participant_id in sorted(set(participant_ids))).encode()
    path = data_dir / FILE
    try:
        if path.read_bytes() == content:
            return False
    except FileNotFoundError:
        pass
    write_files([(str(path.with_suffix(f".{os.getpid()}.tmp")), str(path), content)], str(data_dir))
    return True


class Revoked:
    """The ids in the file, read again when it changed (its mtime and size), at most once a second."""

    def __init__(self, data_dir: Path, every: float = 1.0) -> None:
        self._path = data_dir / FILE
        self._every = every
        self._looked = -every
        self._stamp: tuple[int, int] | None = None
        self._ids: frozenset[int] = frozenset()

    def __contains__(self, participant_id: int) -> bool:
        now = time.monotonic()
        if now - self._looked >= self._every:
            self._looked = now
            self._reload()
        return participant_id in self._ids

    def _reload(self) -> None:
        try:
            status = self._path.stat()
        except FileNotFoundError:
            self._stamp, self._ids = None, frozenset()
            return
        stamp = (status.st_mtime_ns, status.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            self._ids = frozenset(int(line) for line in self._path.read_text().split() if line.isdigit())
