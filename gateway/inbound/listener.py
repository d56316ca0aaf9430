"""The SMTP listener runs in a process of its own; the serving process admits what it kept.

Why a process: processing is CPU-bound Python, and an asyncio SMTP server sharing a
process with it waits for the GIL at every step of every session (measured: 869 mails/s
alone, 24 beside one busy thread). Alone, the listener only writes durable files to
``incoming/`` and names them on a pipe; the ``admitter`` thread here gives them their rows
in batches and enqueues their processing. Files that cannot be admitted are tried again
every few seconds, and at the next start (``admit_waiting``): nothing acknowledged is lost.

The listener exits when the serving process tells it to, or dies (its pipe closes). If
the listener ends by itself, the serving process stops too, with a non-zero status, so
that its supervisor restarts the whole gateway rather than leave it deaf.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from gateway.context import Context
from gateway.inbound.accept import admit, enqueue
from gateway.inbound.spool import incoming_folder
from gateway.settings import ConfigError, Settings

log = logging.getLogger("gateway.smtp")

BATCH = 200  # files admitted in one transaction, at most
RETRY_SECONDS = 5
STARTUP_SECONDS = 60


class ListenerError(ConfigError):
    """The listener process could not start (the port is taken, say)."""


def _listen(settings: Settings, names: Connection, control: Connection) -> None:
    """The listener process: serve SMTP until told to stop or until the serving process is gone."""
    from gateway.cli import configure_logging
    from gateway.inbound.smtp import start_smtp

    configure_logging()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the serving process decides
    try:
        controller = start_smtp(settings, lambda path: names.send(path.name))
    except Exception as error:  # the parent reports it and exits
        names.send(f"!{type(error).__name__}: {error}")
        return
    names.send("")  # ready
    try:
        control.recv()
    except EOFError:  # the serving process died (kill -9): do not outlive it
        os._exit(1)
    controller.stop()
    controller.handler.writer.close()


class SmtpListener:
    """Starts the listener process and admits the files it names, until ``stop``."""

    def __init__(self, context: Context, on_lost: Callable[[], None]) -> None:
        self.context = context
        self.on_lost = on_lost  # called if the listener process ends without being asked to
        self.lost = False
        self._stopping = False
        spawn = multiprocessing.get_context("spawn")  # no fork of a process running threads
        self._names, names = spawn.Pipe(duplex=False)
        control, self._control = spawn.Pipe(duplex=False)
        self.process = spawn.Process(target=_listen, args=(context.settings, names, control), name="smtp",
                                     daemon=True)
        self.process.start()
        names.close()  # only the child writes: its death reads as EOF here
        control.close()
        self._ready()
        self.admitter = threading.Thread(target=self._admit_forever, name="admitter", daemon=True)
        self.admitter.start()

    def _ready(self) -> None:
        if not self._names.poll(STARTUP_SECONDS):
            self.process.kill()
            raise ListenerError(f"the SMTP listener did not start within {STARTUP_SECONDS} s")
        try:
            first = self._names.recv()
        except EOFError:
            raise ListenerError(f"the SMTP listener exited with {self.process.exitcode}") from None
        if first:
            raise ListenerError(f"SMTP on {self.context.settings.smtp_host}:{self.context.settings.smtp_port}: "
                                f"{first[1:]}")

    def _admit_forever(self) -> None:
        folder = incoming_folder(self.context.settings.data_dir)
        left: list[Path] = []  # named, not admitted yet (the database was unavailable)
        while True:
            batch: list[str] = []
            try:
                if self._names.poll(RETRY_SECONDS if left else None):
                    batch.append(self._names.recv())
                    while len(batch) < BATCH and self._names.poll():
                        batch.append(self._names.recv())
            except EOFError:
                self._admit(left, recovering=True)
                if not self._stopping:
                    self._lose()
                return
            left = self._admit(left, recovering=True) + self._admit([folder / name for name in batch])

    def _admit(self, paths: list[Path], *, recovering: bool = False) -> list[Path]:
        """Admit and enqueue ``paths``; those that could not be admitted, to try again.

        ``recovering``: a failed attempt may have admitted and moved some before failing.
        """
        if recovering:
            paths = [path for path in paths if path.exists()]
        if not paths:
            return []
        try:
            ids = admit(self.context, paths, recovering=recovering)
        except Exception:  # kept in incoming/: tried again in a few seconds, and at every start
            log.exception("could not admit %s received messages (kept in %s); trying again in %s s",
                          len(paths), paths[0].parent, RETRY_SECONDS)
            return paths
        for path, inbound_id in zip(paths, ids, strict=True):
            log.info("received %s stored as message %s", path.stem, inbound_id)
        enqueue(ids)
        return []

    def _lose(self) -> None:
        self.process.join(5)
        log.error("the SMTP listener process ended by itself (exit code %s): no mail can come in; stopping",
                  self.process.exitcode)
        self.lost = True
        self.on_lost()

    def stop(self) -> None:
        """Stop accepting, then admit what was accepted until then."""
        self._stopping = True
        if self.process.is_alive():
            self._control.send("stop")
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
        self.admitter.join(30)
