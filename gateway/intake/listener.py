"""The SMTP listeners run in processes of their own; the serving process admits what they kept.

Why a process: processing is CPU-bound Python, and an asyncio SMTP server sharing a
process with it waits for the GIL at every step of every session. Alone, the listener only
writes durable files to ``incoming/`` and names them on a pipe; the ``admitter`` thread here
gives them their rows
in batches and enqueues their processing. Files that cannot be admitted are tried again
every few seconds, and at the next start (``admit_waiting``): nothing acknowledged is lost.

There are two listeners on two cores or more, sharing the port (SO_REUSEPORT), so that
taking mail in goes on while one of them waits for the disk. A listener exits when the
serving process tells it to, or dies (its pipe closes). If a listener ends by itself, the
serving process stops too, with a non-zero status, so that its supervisor restarts the
whole gateway rather than leave it half deaf.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path

from gateway.children import Child
from gateway.clock import utcnow
from gateway.context import Context
from gateway.intake.admission import admit, enqueue, forget_node, mark_admitted
from gateway.intake.smtp import listen
from gateway.intake.spool import incoming_folder
from gateway.logs import OncePerMinute, about
from gateway.metrics import ACCEPTED, REFUSED
from gateway.ports import bind
from gateway.runtime import run_when_idle
from gateway.settings import ConfigError, Settings

log = logging.getLogger("gateway.smtp")
# While the database or the broker is away, each arrival fails the same way: one line a minute says so.
outage_log = logging.getLogger("gateway.smtp.outage")
outage_log.addFilter(OncePerMinute())

BATCH = 200  # files admitted in one transaction, at most
GATHER_SECONDS = 0.02  # names awaited for one transaction: admitting them together costs less a message
RETRY_SECONDS = 5
HEARTBEAT_SECONDS = 2.0  # idle, the admitter writes its watermark this often (``pipeline.claim``)
STARTUP_SECONDS = 60


LISTENERS = min(2, os.cpu_count() or 1)  # processes sharing the SMTP port; more cores than that go to processing


class ListenerError(ConfigError):
    """The listener process could not start (the port is taken, say)."""


def check_port(settings: Settings) -> None:
    """The listeners share their port (SO_REUSEPORT), which would let them share it with another
    gateway too: the port must be free for one plain socket first."""
    bind(settings.smtp_host, settings.smtp_port, "SMTP", ListenerError).close()


class SmtpListener:
    """One listener process, and the socket on which it names the files it kept (and is told to stop)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = False
        self.process = Child(listen, settings)  # its death reads as the end of ``names``
        self.names = self.process.channel
        self._ready()

    def _ready(self) -> None:
        if not self.names.poll(STARTUP_SECONDS):
            self.process.kill()
            raise ListenerError(f"the SMTP listener did not start within {STARTUP_SECONDS} s")
        try:
            first = self.names.recv()
        except (EOFError, OSError):  # the end of its socket, or a reset: it died starting
            raise ListenerError(f"the SMTP listener exited with {self.process.exitcode}") from None
        if first:
            raise ListenerError(f"SMTP on {self.settings.smtp_host}:{self.settings.smtp_port}: {first[1:]}")

    def stop(self) -> None:
        """Stop accepting; what it named until then is still admitted."""
        self.stopping = True
        if self.process.is_alive():
            try:
                self.names.send("stop")
            except OSError:  # it has just died
                pass
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()


class Intake:
    """The listener processes, and the one ``admitter`` thread that admits what they all kept.

    One thread, so that mail is numbered, and so applied, in the order it was received: a
    client that sends a second mail once the first is acknowledged, to the other listener,
    must not see the second one applied first. A listener names a file before it answers
    250, so a name is never read before the names of the mails acknowledged before it, as
    long as every pipe is read dry before admitting (``_gather``); ``admit`` then numbers a
    batch in the order its messages were received.
    """

    def __init__(self, context: Context, on_lost: Callable[[], None], count: int = LISTENERS) -> None:
        self.context = context
        self.on_lost = on_lost  # called if a listener process ends without being asked to
        self.lost = False
        # The name of this host's spool among those taking mail in for one database (``pipeline.claim``).
        self.node = f"{socket.gethostname()}:{context.settings.data_dir.resolve()}"[:300]
        self.watermark = utcnow()
        self._mark(self.watermark)  # what it takes in from now on holds back later mail until it is admitted
        self.listeners: list[SmtpListener] = []
        try:
            for _ in range(count):
                self.listeners.append(SmtpListener(context.settings))
        except BaseException:
            for started in self.listeners:
                started.stop()
            raise
        self.admitter = threading.Thread(target=self._admit_forever, name="admitter", daemon=True)
        self.admitter.start()

    def _admit_forever(self) -> None:
        run_when_idle()  # answering 250 comes first; names left waiting make a larger, cheaper batch
        folder = incoming_folder(self.context.settings.data_dir)
        left: list[Path] = []  # named, not admitted yet (the database was unavailable)
        reading = {listener.names: listener for listener in self.listeners}
        while reading:
            names, ended, read_dry_at = _gather(list(reading), RETRY_SECONDS if left else HEARTBEAT_SECONDS)
            retried = self._admit(left, recovering=True)
            # Admitted with these, every mail acknowledged before the pipes were read dry is admitted.
            left = retried + self._admit([folder / name for name in names],
                                         watermark=None if retried else (self.node, read_dry_at))
            if left:  # alive, and holding later mail back at the last watermark that held
                self._mark(self.watermark)
            elif not names:  # idle: the heartbeat
                self._mark(read_dry_at)
            for pipe in ended:  # what it named until then is admitted all the same
                listener = reading.pop(pipe)
                if not listener.stopping:
                    self._lose(listener)
        self._admit(left, recovering=True)

    def _admit(self, paths: list[Path], *, recovering: bool = False,
               watermark: tuple[str, datetime] | None = None) -> list[Path]:
        """Admit and enqueue ``paths``; those that could not be admitted, to try again.

        ``recovering``: a failed attempt may have admitted and moved some before failing.
        ``watermark``: written with them (``admission.admit``), before the processors are told.
        """
        if recovering:
            paths = [path for path in paths if path.exists()]
        if not paths:
            return []
        try:
            admitted = admit(self.context, paths, recovering=recovering, watermark=watermark)
        except Exception:  # kept in incoming/: tried again in a few seconds, and at every start
            outage_log.exception("could not admit received messages (kept in %s); trying again every %s s",
                                 paths[0].parent, RETRY_SECONDS)
            return paths
        if watermark is not None:
            self.watermark = watermark[1]
        for path, (inbound_id, message_id) in zip(paths, admitted, strict=True):
            log.info("received %s stored as message %s", path.stem, inbound_id, extra=about(inbound_id, message_id))
        try:
            enqueue(sorted(inbound_id for inbound_id, _message_id in admitted))
        except Exception:  # stored and pending: the sweep queues them again (``sweep.requeue_stalled``)
            outage_log.exception("could not queue stored messages for processing (the broker is away); the "
                                 "sweep queues them again after %s s", self.context.settings.requeue_seconds)
        return []

    def _mark(self, watermark: datetime) -> None:
        try:
            mark_admitted(self.context, self.node, watermark)
        except Exception:  # the next batch or heartbeat writes it; meanwhile later mail waits
            outage_log.exception("could not write this host's watermark; trying again in %s s", HEARTBEAT_SECONDS)
        else:
            self.watermark = watermark

    def _lose(self, listener: SmtpListener) -> None:
        listener.process.join(5)
        log.error("the SMTP listener process ended by itself (exit code %s): no mail can come in; stopping",
                  listener.process.exitcode)
        self.lost = True
        self.on_lost()

    def stop(self) -> None:
        """Stop accepting, then admit what was accepted until then."""
        for listener in self.listeners:
            listener.stop()
        self.admitter.join(30)
        for listener in self.listeners:  # read to the end by the admitter
            listener.process.close()
        if not list(incoming_folder(self.context.settings.data_dir).glob("*.eml")):
            try:
                forget_node(self.context, self.node)
            except Exception:  # it goes silent instead, and holds no one back after a while
                outage_log.exception("could not remove this host from those taking mail in")


def _gather(pipes: list[Connection], timeout: float) -> tuple[list[str], list[Connection], datetime]:
    """The names that arrive within ``GATHER_SECONDS`` of the first (about ``BATCH`` at most), then
    every name already waiting in any pipe; the pipes that ended (their listener is gone); and a time
    before which every mail acknowledged was named (a listener names a file before its 250). The
    refusals the listeners tell of on the way are counted."""
    names: list[str] = []
    ended: list[Connection] = []
    live = pipes
    ready = set(wait(live, timeout))
    until = time.monotonic() + GATHER_SECONDS
    while True:
        for pipe in [pipe for pipe in live if pipe in ready]:
            try:
                told = pipe.recv()
            except (EOFError, OSError):  # the end of its socket, or a reset: its listener is gone
                ended.append(pipe)
                continue
            if isinstance(told, dict):
                for reason, count in told.items():
                    REFUSED.labels(reason).inc(count)
            else:
                names.extend(told)
                ACCEPTED.inc(len(told))  # a listener names a file once it is kept, before its 250
        live = [pipe for pipe in live if pipe not in ended]
        gathering = len(names) < BATCH and time.monotonic() < until
        read_dry_at = utcnow()
        ready = set(wait(live, max(0.0, until - time.monotonic()) if gathering else 0)) if live else set()
        if not ready:
            return names, ended, read_dry_at
