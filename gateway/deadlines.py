"""Deadlines as rows: the database is the schedule (CONTRACT §10).

A change that starts a deadline (an order placed, delivered; a period started) writes it with
``schedule`` in its own transaction; a change that makes one moot (the order was accepted, paid,
cancelled) ends it with ``void`` in its own. The sweep calls ``run_due``: each due deadline is
claimed, acted on by the handler of its kind and marked done in one transaction, so it is done
once and only once, whatever happens:

- a crash in the middle rolls the whole step back, and the next sweep does it;
- sweepers side by side on PostgreSQL claim with ``FOR UPDATE SKIP LOCKED``: a row one of them
  holds is skipped by the others, and found done once it is released; SQLite has one writer;
- a sweep that did not run for a day finds everything due since, and does it in the order due;
- a clock moved backwards makes nothing due that was done: done is a state, not a time.

Nothing waits in the broker for days: the broker only carries the mails a step wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.context import Context
from gateway.models import Deadline, Request
from gateway.outbound.notify import Mailer
from gateway.settings import Settings

log = logging.getLogger("gateway.deadlines")

# What a kind's handler does with its due deadline; returns what it did, for the row and the log.
Handler = Callable[[Session, Settings, Mailer, Deadline], str]


def schedule(session: Session, request: Request, kind: str, due_at: datetime) -> Deadline:
    """A pending deadline of ``kind`` for ``request``; one of the same kind still pending is voided
    (a new delivery date replaces the old one)."""
    void(session, request, [kind], "replaced")
    deadline = Deadline(request=request, kind=kind, due_at=due_at)
    session.add(deadline)
    return deadline


def void(session: Session, request: Request, kinds: Iterable[str], why: str) -> list[Deadline]:
    """End the pending deadlines of these kinds: what they waited for happened (``why``)."""
    if request.id is None:
        session.flush()  # a request opened in this transaction: its deadlines are keyed by its id
    voided = list(session.scalars(select(Deadline).where(Deadline.request_id == request.id,
                                                         Deadline.kind.in_(list(kinds)), Deadline.state == "pending")))
    for deadline in voided:
        deadline.state, deadline.closed_at, deadline.outcome = "void", utcnow(), why
    return voided


def pending(session: Session, request: Request) -> list[Deadline]:
    return list(session.scalars(select(Deadline).where(Deadline.request_id == request.id,
                                                       Deadline.state == "pending").order_by(Deadline.due_at)))


@dataclass
class Swept:
    """What one ``run_due`` did: the deadlines done, those whose handler failed, the mails to send."""

    done: list[str] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    outbox_ids: list[int] = field(default_factory=list)


def run_due(context: Context, handlers: Mapping[str, Handler], most: int = 10_000) -> Swept:
    """Do every deadline due now, oldest first, each in a transaction of its own (see the module)."""
    swept = Swept()
    skip_locked = context.engine.dialect.name == "postgresql"
    while len(swept.done) + len(swept.failed) < most:
        with context.sessions.begin() as session:
            query = (select(Deadline).where(Deadline.state == "pending", Deadline.due_at <= utcnow())
                     .order_by(Deadline.due_at, Deadline.id).limit(1))
            if swept.failed:
                query = query.where(Deadline.id.not_in(swept.failed))
            deadline = session.scalars(query.with_for_update(skip_locked=True) if skip_locked else query).first()
            if deadline is None:
                break
            mailer = Mailer(session, context.settings)
            try:
                with session.begin_nested():
                    outcome = handlers[deadline.kind](session, context.settings, mailer, deadline)
            except Exception:  # the deadline stays pending: the next sweep tries again
                log.exception("deadline %s (%s of request #%s, due %s) failed", deadline.id, deadline.kind,
                              deadline.request_id, deadline.due_at.isoformat(timespec="seconds"))
                swept.failed.append(deadline.id)
                continue
            deadline.state, deadline.closed_at, deadline.outcome = "done", utcnow(), outcome
            line = f"deadline {deadline.id} ({deadline.kind} of #{deadline.request_id}): {outcome}"
        log.info("%s", line)
        swept.done.append(line)
        swept.outbox_ids += mailer.outbox_ids
    return swept


def due_count(session: Session) -> int:
    """How many deadlines are due and not done (for ``/metrics`` and ``gateway sweep``)."""
    return int(session.scalar(select(func.count(Deadline.id)).where(Deadline.state == "pending",
                                                                    Deadline.due_at <= utcnow())) or 0)
