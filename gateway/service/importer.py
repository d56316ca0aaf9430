"""``gateway import``: an mbox file or a Maildir through the same door and pipeline as SMTP.

Messages are stored ``STORE_TOGETHER`` at a time (written to the spool with one flush, admitted in one
transaction, numbered in the order of the archive), and applied as ``serve`` applies them:
``processor.drain`` claims whole conversations, oldest first, and applies them in batches, in the
processor (a process of its own, started by the command before its own imports) for an archive large
enough to pay for starting one. Storing, applying and sending overlap: this thread stores, two others
drain, one sends. Everything is stored before it is applied, so an interrupted import loses
nothing: what was stored and not applied is applied at the next ``serve``. With ``--no-mail`` each
message is stored quiet (``inbound.quiet``): whoever applies it, this command or a processor after an
interruption, keeps its mails marked suppressed, never sent.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

from sqlalchemy import func, select
from tqdm import tqdm

from gateway.children import Child
from gateway.context import Context, open_context
from gateway.intake.admission import store_all
from gateway.intake.archives import Archive
from gateway.intake.spool import Envelope
from gateway.models import Inbound
from gateway.outbound.outbox import deliver_all
from gateway.service import processor
from gateway.settings import ConfigError, Settings

PROGRESS_SECONDS = 0.5
# Messages stored in one transaction. Larger than a processing batch: while the processor applies,
# each storing transaction waits for SQLite's writer behind one of its batches.
STORE_TOGETHER = 200
STORE_BYTES = 64 * 1024 * 1024  # or fewer, once they hold this many bytes
# Stored messages waiting before applying begins (unless the whole archive is stored sooner): begun
# with the first ones, the processor's batches and the storing took the writer in turns, and each of
# its batches held the few messages stored since the last.
APPLY_FROM = 500
SEND_TOGETHER = 250  # mails handed over before they are sent, together (the rest at the end)
# Messages applied in one transaction: more than ``serve``'s ``PROCESS_TOGETHER``, which a mail's wait
# and the processor's memory bound; an archive waits for no one, and each transaction's fixed costs
# are shared by more messages.
APPLY_TOGETHER = 50


def _batches(raws: Iterator[bytes]) -> Iterator[list[bytes]]:
    """``STORE_TOGETHER`` messages at a time, or fewer when they reach ``STORE_BYTES``: an archive of large
    messages is not held whole in memory."""
    batch: list[bytes] = []
    size = 0
    for raw in raws:
        batch.append(raw)
        size += len(raw)
        if len(batch) == STORE_TOGETHER or size >= STORE_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class _Applier:
    """``processor.drain`` in ``DRAINS`` threads, as ``serve``'s workers drain: while the processor
    applies one batch, the other thread reads and parses the next. The drains begin once ``APPLY_FROM``
    messages are stored, and are started again whenever messages were stored after they last looked.
    The mails the batches hand over are sent by a thread of their own (a command has no worker), in
    groups of ``SEND_TOGETHER``: sending waits for its turns at SQLite's writer, which the storing
    thread must not wait behind. Nothing is applied before the processor has started: applying here
    meanwhile would only hold up the storing, whose turns at SQLite's writer it would take."""

    DRAINS = 2

    def __init__(self, context: Context, processor_child: Child | None, interrupted: threading.Event) -> None:
        self.context = context
        self._interrupted = interrupted
        self._stopping = threading.Event()
        self._threads = ThreadPoolExecutor(self.DRAINS, thread_name_prefix="import-apply")
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="import-send")
        self._sending: list[Future[None]] = []
        self._unsent: list[int] = []  # handed over, not yet taken by the sending thread
        self._unsent_lock = threading.Lock()
        self._send_asked = False  # the sending thread is asked to take them: asked once, until it does
        self._draining: list[Future[None]] = []
        self._starting = None if processor_child is None else self._threads.submit(
            processor.adopt, processor_child)  # while this one stores

    def stored(self, count: int) -> None:
        """``count`` messages are stored so far: from ``APPLY_FROM`` on, they are drained by the running
        drains if they still look, else by new ones."""
        if count >= APPLY_FROM:
            self._drain()

    def _drain(self) -> None:
        if self._starting is not None:
            if not self._starting.done():
                return
            self._starting.result()  # a processor that cannot start stops the import, with its reason
            self._starting = None
        self._forget_done()
        while len(self._draining) < self.DRAINS:
            self._draining.append(self._submit_drain())

    def _submit_drain(self) -> Future[None]:
        return self._threads.submit(processor.drain, self.context, self._send, self._stopping, APPLY_TOGETHER)

    def _send(self, outbox_ids: list[int]) -> None:
        """A batch's mails, handed over by a drain once it committed: sent by the sending thread, with the
        next batches' once they are ``SEND_TOGETHER``, else at the end (``stop``)."""
        with self._unsent_lock:
            self._unsent += outbox_ids
            if len(self._unsent) < SEND_TOGETHER or self._send_asked:
                return  # sent with the next ones, or at the end
            self._send_asked = True
        self._sending.append(self._sender.submit(self._send_unsent))

    def _send_unsent(self) -> None:
        """All the mails handed over until now, sent together: the sending thread takes two turns at
        SQLite's writer for each group (to claim it, then to mark it sent), and the processor waits for
        each of them; a group of a few batches' mails shares them."""
        with self._unsent_lock:
            outbox_ids, self._unsent, self._send_asked = self._unsent, [], False
        for start in range(0, len(outbox_ids), SEND_TOGETHER):
            deliver_all(self.context, outbox_ids[start:start + SEND_TOGETHER])

    def _forget_done(self) -> None:
        for done in [drain for drain in self._draining if drain.done()]:
            done.result()  # a drain that failed stops the import, with its reason
            self._draining.remove(done)
        for sent in [sending for sending in self._sending if sending.done()]:
            sent.result()  # so does a failure to send
            self._sending.remove(sent)

    def finish(self, progress: Callable[[], object]) -> None:
        """Everything stored applied and sent; a last drain sees what the others may have missed.
        ``progress`` is called every ``PROGRESS_SECONDS`` meanwhile."""
        if self._starting is not None:
            futures_wait([self._starting])
        self._drain()
        while self._draining:
            futures_wait(self._draining, timeout=PROGRESS_SECONDS)
            self._forget_done()
            progress()
            if self._interrupted.is_set():
                raise KeyboardInterrupt
        self._submit_drain().result()
        self.stop()
        self._forget_done()  # a mail that could not be sent stops the import, with its reason
        progress()

    def stop(self) -> None:
        """The batches being applied finish, no other starts; what they applied is sent. (Called twice:
        the second time finds nothing to do.) A failure of those sends is not raised here, where the
        import may be stopping for another reason: their mails stay pending, for the next ``serve``."""
        self._stopping.set()
        self._threads.shutdown()
        if self._unsent:  # the last ones
            self._sending.append(self._sender.submit(self._send_unsent))
        processor.stop()
        self._sender.shutdown()


def _outcomes(context: Context, inbound_ids: list[int]) -> Counter[str]:
    """What became of the imported messages, as their rows say."""
    counts: Counter[str] = Counter()
    with context.sessions() as session:
        for start in range(0, len(inbound_ids), 500):
            counts.update({status: count for status, count in session.execute(
                select(Inbound.status, func.count()).where(Inbound.id.in_(inbound_ids[start:start + 500]))
                .group_by(Inbound.status))})
    return counts


def _applied(context: Context, inbound_ids: list[int]) -> int:
    """How many of the imported messages are no longer pending (their ids grow with the archive)."""
    if not inbound_ids:
        return 0
    with context.sessions() as session:
        return len(inbound_ids) - int(session.scalar(select(func.count()).where(
            Inbound.id.between(inbound_ids[0], inbound_ids[-1]), Inbound.status == "pending")) or 0)


def _say_interrupted(context: Context, stored: list[int], total: int) -> None:
    print(f"gateway import: interrupted: {len(stored)} of {total} messages stored, "
          f"{_applied(context, stored)} of them applied. "
          "What is stored and not applied yet is applied by the next `gateway serve`; the same import run "
          "again stores the rest (what is stored already counts as duplicate).", file=sys.stderr)


def import_archive(settings: Settings, archive: Archive, mailbox_address: str | None,
                   interrupted: threading.Event, *, processor_child: Child | None = None, as_json: bool = False,
                   send_mail: bool = True) -> int:
    """Store, apply and send ``archive``'s messages, in the processor ``processor_child`` when it is given
    (a child running ``processor.processor_main``, not yet answered), here otherwise. ``interrupted``
    (Ctrl-C, ``runtime.interrupt_as_request``) stops it between two batches: ``KeyboardInterrupt``."""
    target = settings.mailbox_for(mailbox_address) if mailbox_address else settings.first_helpdesk()
    if target is None:
        raise ConfigError(f"{mailbox_address or 'no helpdesk mailbox'} is not a configured mailbox")
    context = open_context(settings)
    applier = _Applier(context, processor_child, interrupted)
    stored: list[int] = []
    try:
        with tqdm(total=len(archive), unit="mail", desc="stored", file=sys.stderr, disable=None) as bar:
            for raws in _batches(archive.messages(settings.max_message_size)):
                if interrupted.is_set():
                    raise KeyboardInterrupt
                # one received time for the batch: admission keeps the archive's order
                envelope = Envelope("import", target.address, "", (target.address,), quiet=not send_mail)
                stored += store_all(context, [(raw, envelope) for raw in raws])
                applier.stored(len(stored))
                bar.update(len(raws))
        with tqdm(total=len(stored), unit="mail", desc="applied", file=sys.stderr, disable=None) as bar:
            applier.finish(lambda: None if bar.disable else bar.update(_applied(context, stored) - bar.n))
    except KeyboardInterrupt:  # once what was being applied is applied and sent (``stop``, below)
        applier.stop()
        _say_interrupted(context, stored, len(archive))
        raise
    finally:  # interrupted: what is stored and not applied is applied by the next serve
        applier.stop()
    counts = _outcomes(context, stored)
    imported = sum(counts.values())
    for unreadable in archive.unreadable:
        print(f"gateway import: not read, left out: {unreadable}", file=sys.stderr)
    if archive.unreadable:
        counts["unreadable"] = len(archive.unreadable)
    if as_json:
        print(json.dumps(dict(counts)))
    else:
        print(f"imported {imported} messages: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if archive.unreadable else 0
