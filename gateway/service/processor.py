"""In ``gateway serve``, messages are applied in a process of their own: the processor.

Why: applying a message is CPU-bound Python (parsing, rules, templates, the ORM). In the
serving process it shared one GIL with admitting what the listener received, sending mail
and answering the web page, while the machine's other core idled once the mail was in.
The dramatiq actors stay where they are, on the broker ``gateway serve`` configured:
``process_inbound`` reads and parses its batch (``read_ahead``), hands it to the processor
and waits for the outbox ids, which it enqueues for ``send_mail`` here. The processor holds
SQLite's one writer lock while it applies: parsing here, while it applies the batch before,
takes a quarter of its work off it. It takes its turn at that lock with the serving
process's writers (``transaction.writer``), batch by batch, so that admission is not kept
waiting. What it applies, and in what order, is decided by the claims (``pipeline.claim``): one
conversation at a time, in the order received, so several threads, processes and hosts may apply
messages side by side.

The processor runs below the listener and the web page in priority, exits when the serving
process is gone, and is started again if it dies. What it was given is then tried again in
the new one, a batch one message at a time, so that only a message that kills it again is
marked failed, alone.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from gateway import queues
from gateway.context import Context, current, open_context
from gateway.intake.admission import PROCESS_TOGETHER
from gateway.logs import configure_logging
from gateway.pipeline.claim import Claims
from gateway.pipeline.process import Ahead, fail, finished, process_batch, read_ahead
from gateway.runtime import run_when_idle, settle
from gateway.settings import Settings
from gateway.transaction import writer

log = logging.getLogger("gateway.inbound")


class Processor:
    """One process per ``gateway serve``: on SQLite, which has one writer, more would only wait for
    it; on PostgreSQL, more processors come from more ``gateway serve --role process``."""

    def __init__(self, settings: Settings, *, yielding: bool = True) -> None:
        self._settings = settings
        self._yielding = yielding
        self._restarting = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        """Started now, not at the first message: starting takes a second of CPU, which the first mails
        would otherwise wait for, and a processor that cannot start stops ``gateway serve`` at once."""
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_boot, initargs=(self._settings, os.getpid(), self._yielding))
        pool.submit(os.getpid).result()
        return pool

    def apply(self, inbound_ids: list[int]) -> list[int]:
        """Apply the messages; the outbox ids to send once they are committed.

        A processor found dead may have died of anything: the messages are tried once more in a
        new one, a batch one message at a time; a message that kills that one too is marked failed.
        """
        ahead = read_ahead(current(), inbound_ids)
        pool = self._pool
        applied = _submit(pool, inbound_ids, ahead)
        for attempt in range(2):
            if attempt:
                pool = self._pool
                applied = _submit(pool, inbound_ids, ahead)
            try:
                return applied.result()
            except BrokenProcessPool:
                self._restart(pool)
            if len(inbound_ids) > 1:
                return [outbox_id for inbound_id in inbound_ids for outbox_id in self.apply([inbound_id])]
        finished(inbound_ids[0], fail(current(), inbound_ids[0], "the processing process died twice while applying it"))
        return []

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._restarting:
            if self._pool is broken:
                log.error("the processing process died; starting another one")
                broken.shutdown(wait=False)
                self._pool = self._start()

    def stop(self) -> None:
        self._pool.shutdown(wait=True)


_running: Processor | None = None
_claims: Claims | None = None
_making_claims = threading.Lock()


def start(settings: Settings, *, yielding: bool = True) -> Processor:
    """From now on, ``apply`` in this process runs in the processor. ``yielding``: it runs only on what
    the SMTP listeners of this host leave (``runtime.run_when_idle``); a host that takes no mail in has
    nothing to yield to, and would only starve whenever anything else on the machine is busy."""
    global _running
    _running = Processor(settings, yielding=yielding)
    return _running


def stop() -> None:
    """Stop this process's processor, once what it was given is applied; ``apply`` runs here again."""
    global _running
    if _running is not None:
        _running.stop()
        _running = None


def drain(context: Context, send: Callable[[list[int]], None] = queues.send_mail,
          stopping: threading.Event | None = None) -> None:
    """Apply what may be applied now, batch after batch, until nothing is left that no one else
    holds or ``stopping`` is set; each batch's mail is handed to ``send`` (the ``send_mail`` actor)
    once it is committed."""
    global _claims
    with _making_claims:  # one per process, which its threads share: two would not exclude each other
        if _claims is None or _claims.context is not context:
            _claims = Claims(context)
        claims = _claims
    while not (stopping and stopping.is_set()) and (inbound_ids := claims.take(PROCESS_TOGETHER)):
        try:
            outbox_ids = apply(inbound_ids)
        finally:
            claims.release(inbound_ids)
        if outbox_ids:
            send(outbox_ids)


def apply(inbound_ids: list[int]) -> list[int]:
    """Apply stored messages in the processor if this process started one, here otherwise."""
    if _running is not None:
        return _running.apply(inbound_ids)
    return _apply(inbound_ids)


def _submit(pool: ProcessPoolExecutor, inbound_ids: list[int], ahead: dict[int, Ahead]) -> Future[list[int]]:
    """``pool.submit``; a pool found broken gives a future that fails as the work would have in it."""
    try:
        return pool.submit(_apply, inbound_ids, ahead)
    except BrokenProcessPool as broken:
        failed: Future[list[int]] = Future()
        failed.set_exception(broken)
        return failed


def _apply(inbound_ids: list[int], ahead: dict[int, Ahead] | None = None) -> list[int]:
    with writer(current(), background=True):
        outcomes = process_batch(current(), inbound_ids, ahead)
    return [outbox_id for outcome in outcomes for outbox_id in outcome.outbox_ids]


def _boot(settings: Settings, parent: int, yielding: bool) -> None:
    """In the processor: log as the serving process does, yield to it, connect, and watch it."""
    configure_logging()
    if yielding:
        run_when_idle()  # its other threads start from this one, and run so too
    open_context(settings, migrated=True)
    settle()
    threading.Thread(target=_exit_with, args=(parent,), name="orphan-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    """A ``kill -9`` of the serving process must not leave the processor behind."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)
