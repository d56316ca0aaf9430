"""One transaction for a web request that changes something, its mails sent once it has committed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from threading import Lock
from typing import cast

from sqlalchemy.orm import Session
from starlette.requests import Request

from gateway.context import Context
from gateway.outbound.notify import Mailer


def context_of(request: Request) -> Context:
    """The gateway context ``create_app`` gave the app."""
    return cast(Context, request.app.state.context)


# SQLite has one writer at a time and makes the others retry after growing sleeps; web
# requests that write queue here instead, in order, which keeps the slowest answer short.
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
