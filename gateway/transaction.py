"""One transaction that may write mail, its mails sent once it has committed.

For changes made outside the processing of a message: a web request, a decision's follow-up, the
sweep, a command. On SQLite, every writer of the gateway's processes takes its turn through
``writer.writer``: here, for the whole transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from gateway import queues
from gateway.context import Context
from gateway.notify import Mailer
from gateway.writer import writer


@contextmanager
def mailing(context: Context, *, background: bool = False) -> Iterator[tuple[Session, Mailer]]:
    """A transaction that may write mail, in the writer's turn: its mails are written to the outbox just
    before it commits, here; ``mailer.outbox_ids`` are then the mails to hand to the sender. On error
    nothing is written.

    ``background``: work no one is waiting for (a sweep, a follow-up), which lets web requests go first.
    """
    with writer(context, background=background), context.sessions.begin() as session:
        mailer = Mailer(session, context.settings)
        yield session, mailer
        mailer.write_outbox()


@contextmanager
def transaction(context: Context, *, background: bool = False) -> Iterator[tuple[Session, Mailer]]:
    """``mailing``, whose mails go to ``send_mail`` once it has committed."""
    with mailing(context, background=background) as (session, mailer):
        yield session, mailer
    if mailer.outbox_ids:
        queues.send_mail(mailer.outbox_ids)
