"""One transaction that may write mail, its mails sent once it has committed.

For changes made outside the processing of a message: a web request, a decision's follow-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from threading import Event, Lock

from sqlalchemy.orm import Session

from gateway.context import Context
from gateway.outbound.notify import Mailer


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


@contextmanager
def transaction(context: Context, *, background: bool = False) -> Iterator[tuple[Session, Mailer]]:
    """A session and its mailer; on commit the outbox rows go to ``send_mail``, on error nothing is sent.

    ``background``: work no one is waiting for (a follow-up), which lets web requests go first.
    """
    writers = _SQLITE_WRITER.held(urgent=not background) if context.engine.dialect.name == "sqlite" else nullcontext()
    with writers, context.sessions.begin() as session:
        mailer = Mailer(session, context.settings)
        yield session, mailer
    from gateway.tasks import send_mail  # declared on the broker ``gateway serve`` configured

    if mailer.outbox_ids:
        send_mail.send(mailer.outbox_ids)
