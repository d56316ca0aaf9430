"""One transaction that may write mail, its mails sent once it has committed.

For changes made outside the processing of a message: a web request, a decision's follow-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from threading import Lock

from sqlalchemy.orm import Session

from gateway.context import Context
from gateway.outbound.notify import Mailer

# SQLite has one writer at a time and makes the others retry after growing sleeps; the
# writers of this process queue here instead, in order, which keeps the slowest answer short.
_SQLITE_WRITER = Lock()


@contextmanager
def transaction(context: Context) -> Iterator[tuple[Session, Mailer]]:
    """A session and its mailer; on commit the outbox rows go to ``send_mail``, on error nothing is sent."""
    if context.engine.dialect.name == "sqlite":
        with _SQLITE_WRITER, context.sessions.begin() as session:
            mailer = Mailer(session, context.settings)
            yield session, mailer
    else:
        with context.sessions.begin() as session:
            mailer = Mailer(session, context.settings)
            yield session, mailer
    from gateway.tasks import send_mail  # declared on the broker ``gateway serve`` configured

    if mailer.outbox_ids:
        send_mail.send(mailer.outbox_ids)
