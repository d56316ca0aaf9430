"""One transaction that may write mail, its mails sent once it has committed.

For changes made outside the processing of a message: a web request, a decision's follow-up.
On SQLite, every writer of the gateway's processes takes its turn through ``writer.writer``.
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
def mailing(context: Context) -> Iterator[tuple[Session, Mailer]]:
    """A transaction that may write mail: its mails are written to the outbox just before it commits,
    here; ``mailer.outbox_ids`` are then the mails to hand to the sender. On error nothing is written."""
    with context.sessions.begin() as session:
        mailer = Mailer(session, context.settings)
        yield session, mailer
        mailer.write_outbox()


@contextmanager
def transaction(context: Context, *, background: bool = False) -> Iterator[tuple[Session, Mailer]]:
    """``mailing`` in the writer's turn, whose mails go to ``send_mail`` once it has committed.

    ``background``: work no one is waiting for (a follow-up), which lets web requests go first.
    """
    with writer(context, background=background), mailing(context) as (session, mailer):
        yield session, mailer
    if mailer.outbox_ids:
        queues.send_mail(mailer.outbox_ids)
