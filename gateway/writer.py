"""The turn at SQLite's one writer lock, among the threads of a process and among the gateway's processes.

Every writer of the gateway takes it on SQLite: a web request, the processor's batch, admission, the
outbox's sender, the sweep, an IMAP poller's place in its folder, ``gateway replay`` and the commands
that change orders. On PostgreSQL there is nothing to wait for.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Event, Lock

from gateway.context import Context


class WriterGate:
    """One writer at a time, and the web's first.

    SQLite has one writer at a time and makes the others retry after growing sleeps; the
    writers of this process queue on one lock instead. Background work (a decision's
    follow-up) also waits until no web request is waiting, so a click waits for at most
    the one background transaction already running, never for the queue of them.
    """

    def __init__(self) -> None:
        self._writer = Lock()
        self._count = Lock()
        self._urgent = 0
        self._no_urgent = Event()
        self._no_urgent.set()

    @contextmanager
    def held(self, *, urgent: bool) -> Iterator[None]:
        if urgent:
            with self._count:
                self._urgent += 1
                self._no_urgent.clear()
            try:
                with self._writer:
                    yield
            finally:
                with self._count:
                    self._urgent -= 1
                    if not self._urgent:
                        self._no_urgent.set()
            return
        while True:
            self._no_urgent.wait()
            self._writer.acquire()
            if not self._urgent:
                break
            self._writer.release()  # a click came in meanwhile: it goes first
        try:
            yield
        finally:
            self._writer.release()


_SQLITE_WRITER = WriterGate()


_LOCK_FILES: dict[Path, int] = {}


@contextmanager
def _across_processes(lock_file: Path) -> Iterator[None]:
    """The turn of this process among the gateway's processes that write (the serving process, the
    processor): SQLite makes a writer that finds its lock taken sleep and retry, so the processor,
    which takes the lock again right after each commit, kept the serving process's writers out for
    seconds. A lock file queues them instead, and is let go if its holder dies."""
    descriptor = _LOCK_FILES.get(lock_file)
    if descriptor is None:
        descriptor = _LOCK_FILES[lock_file] = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)


@contextmanager
def writer(context: Context, *, background: bool = False) -> Iterator[None]:
    """The turn at SQLite's one writer lock, in this process and among the gateway's processes (on
    PostgreSQL, nothing to wait for)."""
    if context.engine.dialect.name != "sqlite":
        yield
        return
    with _SQLITE_WRITER.held(urgent=not background), _across_processes(context.settings.data_dir / "writer.lock"):
        yield
