"""In ``gateway serve``, messages are applied in a process of their own: the processor.

Why: applying a message is CPU-bound Python (parsing, rules, templates, the ORM). In the
serving process it shared one GIL with admitting what the listener received, sending mail
and answering the web page, while the machine's other core idled once the mail was in.
The dramatiq actors stay where they are, on the broker ``gateway serve`` configured:
``process_inbound`` reads and parses its batch (``read_and_parse``), hands it to the processor
and waits for the outbox ids, which it enqueues for ``send_mail`` here. The processor holds
SQLite's one writer lock while it applies: parsing here, while it applies the batch before,
takes that work off it. It takes its turn at that lock with the serving
process's writers (``writer.writer``), batch by batch, so that admission is not kept
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
import pickle
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from gateway import queues
from gateway.children import Child
from gateway.context import Context, current, open_context
from gateway.intake.admission import PROCESS_TOGETHER
from gateway.logs import configure_logging
from gateway.pipeline.claim import Claims
from gateway.pipeline.process import Ahead, fail, finished, process_batch, read_and_parse
from gateway.runtime import run_when_idle, settle
from gateway.settings import ConfigError, Settings
from gateway.writer import writer

log = logging.getLogger("gateway.inbound")


class Processor:
    """One process per ``gateway serve``: on SQLite, which has one writer, more would only wait for
    it; on PostgreSQL, more processors come from more ``gateway serve --role process``.

    A batch is sent as soon as it is read ahead, while the one before is applied: the process reads
    the next one the moment it is done, without waiting for a thread of this process to be scheduled
    (the workers run only on what the listeners leave). It answers in the order it was sent to.
    """

    def __init__(self, child: Child) -> None:
        """``child``: a process just started to run ``processor_main``, not yet answered."""
        self._sending = threading.Lock()  # a batch is written whole; the process is replaced under it
        self._answers = threading.Condition()  # the answers are read in the order the batches were sent
        self._stopped = False
        self._line = _Line(_ready(child))

    def apply(self, inbound_ids: list[int]) -> list[int]:
        """Apply the messages; the outbox ids to send once they are committed.

        A processor found dead may have died of anything: the messages are tried once more in a
        new one, a batch one message at a time; a message that kills that one too is marked failed.
        """
        ahead = read_and_parse(current(), inbound_ids)
        try:
            return self._run(inbound_ids, ahead)
        except _Died:
            if len(inbound_ids) > 1:
                return [outbox_id for inbound_id in inbound_ids for outbox_id in self.apply([inbound_id])]
        try:
            return self._run(inbound_ids, ahead)
        except _Died:
            died = "the processing process died twice while applying it"
            finished(inbound_ids[0], fail(current(), inbound_ids[0], died))
            return []

    def _run(self, inbound_ids: list[int], ahead: dict[int, Ahead]) -> list[int]:
        """The batch applied in the process; ``_Died`` if the process died while applying it. A batch
        sent after that one, which the process never read, is sent again to the next process."""
        while True:
            line, ticket = self._send(inbound_ids, ahead)
            answer = None if ticket is None else self._answer(line, ticket)
            if answer is not None:
                break
            self._replace(line)
            if ticket is not None and line.lost == ticket:
                raise _Died
        outcome, value = answer
        if outcome == "error":
            raise value
        return list(value)

    def _send(self, inbound_ids: list[int], ahead: dict[int, Ahead]) -> tuple[_Line, int | None]:
        """The process the batch was sent to, and its place in that process's order (None: it is dead)."""
        with self._sending:
            if self._stopped:
                raise RuntimeError("the processing process was stopped")
            line = self._line
            try:
                line.child.channel.send((inbound_ids, ahead))
            except OSError:
                return line, None
            line.sent += 1
            return line, line.sent - 1

    def _answer(self, line: _Line, ticket: int) -> tuple[str, Any] | None:
        """The answer to the ``ticket``-th batch sent to ``line``, once those before it are read; None when
        the process is gone (``line.lost``: the first batch it did not answer, the one it was applying)."""
        with self._answers:
            self._answers.wait_for(lambda: line.answered == ticket)
            try:
                answer: tuple[str, Any] = line.child.channel.recv()
            except Exception:  # the end of the socket, a reset, an answer that cannot be read: it is lost
                if line.lost is None:
                    line.lost = ticket
                return None
            finally:
                line.answered += 1
                self._answers.notify_all()
            return answer

    def _replace(self, line: _Line) -> None:
        with self._sending:
            if self._stopped:
                raise RuntimeError("the processing process died while it was being stopped")
            if self._line is line:
                log.error("the processing process died; starting another one")
                line.child.kill()
                line.child.close()
                self._line = _Line(_ready(line.child.again()))

    def stop(self) -> None:
        """Once what it was sent is applied: it reads the end of its socket. Nothing is sent after."""
        with self._sending, self._answers:
            self._stopped = True
            self._answers.wait_for(lambda: self._line.answered == self._line.sent)
            self._line.child.close()
            self._line.child.join()


@dataclass
class _Line:
    """A processing process, how many batches were sent to it and answered, and the first it did not
    answer (it died or its answer could not be read)."""

    child: Child
    sent: int = 0
    answered: int = 0
    lost: int | None = None


class _Died(Exception):
    """The processing process died while applying a batch."""


def _ready(child: Child) -> Child:
    """The child once it has started, which takes a second of CPU; one that cannot start stops the command
    that started it, with its reason."""
    try:
        booted = child.channel.recv()
    except (EOFError, OSError):  # the end of its socket, or a reset: it died starting
        child.join(5)
        raise RuntimeError(f"the processing process did not start (exit code {child.exitcode})") from None
    if isinstance(booted, ConfigError):  # said here, where the command stops on it
        child.join(5)
        raise booted
    return child


_running: Processor | None = None
_claims: Claims | None = None
_making_claims = threading.Lock()


def start(settings: Settings, *, yielding: bool = True) -> Processor:
    """From now on, ``apply`` in this process runs in the processor, which is started now rather than at
    the first message: the first mails would wait for its start, and one that cannot start stops the
    command at once. ``yielding``: it runs only on what the SMTP listeners of this host leave
    (``runtime.run_when_idle``); a host that takes no mail in has nothing to yield to, and would only
    starve whenever anything else on the machine is busy."""
    return adopt(Child(processor_main, settings, yielding))


def adopt(child: Child) -> Processor:
    """``start``, with a processor started already with its own settings and ``yielding`` (``gateway
    import`` starts it by the name of ``processor_main``, before its own imports)."""
    global _running
    _running = Processor(child)
    return _running


def stop() -> None:
    """Stop this process's processor, once what it was given is applied; ``apply`` runs here again."""
    global _running
    if _running is not None:
        _running.stop()
        _running = None


def drain(context: Context, send: Callable[[list[int]], None] = queues.send_mail,
          stopping: threading.Event | None = None, together: int = PROCESS_TOGETHER) -> None:
    """Apply what may be applied now, batch after batch (of ``together`` messages at most), until nothing
    is left that no one else holds or ``stopping`` is set; each batch's mail is handed to ``send`` (the
    ``send_mail`` actor) once it is committed."""
    global _claims
    with _making_claims:  # one per process, which its threads share: two would not exclude each other
        if _claims is None or _claims.context is not context:
            _claims = Claims(context)
        claims = _claims
    while not (stopping and stopping.is_set()) and (inbound_ids := claims.take(together)):
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


def _apply(inbound_ids: list[int], ahead: dict[int, Ahead] | None = None) -> list[int]:
    with writer(current(), background=True):
        outcomes = process_batch(current(), inbound_ids, ahead)
    return [outbox_id for outcome in outcomes for outbox_id in outcome.outbox_ids]


def processor_main(channel: Connection, settings: Settings, yielding: bool) -> None:
    """The processor (``children.Child``): log as the serving process does, yield to it, connect, then
    apply the batches it is sent until the serving process is gone or stops it."""
    configure_logging()
    if yielding:
        run_when_idle()  # its other threads start from this one, and run so too
    try:
        open_context(settings, migrated=True)
    except ConfigError as error:  # the data folder, say: the serving process says it and stops
        channel.send(error)
        return
    settle()
    channel.send("ready")
    while True:
        try:
            inbound_ids, ahead = channel.recv()
        except (EOFError, OSError):  # stopped, or the serving process died (a ``kill -9`` must not leave this)
            return
        answer: tuple[str, list[int] | Exception]
        try:
            answer = ("done", _apply(inbound_ids, ahead))
        except Exception as error:  # raised in the serving process, where the batch was asked for
            answer = ("error", _picklable(error))
        try:
            channel.send(answer)
        except OSError:  # the serving process died while this batch was applied
            return


def _picklable(error: Exception) -> Exception:
    """The error itself when the serving process can read it back, else its traceback's text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError("".join(traceback.format_exception(error)))
    return error
