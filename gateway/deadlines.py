"""Deadlines as rows: the database is the schedule (CONTRACT §10).

A change that starts a deadline (an order placed, delivered; a period started) writes it with
``schedule`` in its own transaction; a change that makes one moot (the order was accepted, paid,
cancelled) ends it with ``void`` in its own. The sweep calls ``run_due``: due deadlines are
claimed, acted on by the handler of their kind and marked done in one transaction, so each is
done once and only once, whatever happens:

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

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.context import Context
from gateway.models import Deadline, Request
from gateway.notify import Mailer
from gateway.settings import Settings
from gateway.transaction import mailing

log = logging.getLogger("gateway.deadlines")

# What a kind's handler does with its due deadline; returns what it did, for the row and the log.
Handler = Callable[[Session, Settings, Mailer, Deadline], str]
# Reads ahead, in a few queries, what the handlers of a batch will read (the requests' orders, the
# mails they sent lately), and returns it: the sweep holds it for the batch, since the session keeps
# only what is referenced.
ReadAhead = Callable[[Mailer, list[Deadline]], object]


def schedule(session: Session, request: Request, kind: str, due_at: datetime) -> Deadline:
    """A pending deadline of ``kind`` for ``request``; one of the same kind still pending is voided
    (a new delivery date replaces the old one)."""
    void(session, request, [kind], "replaced")
    deadline = Deadline(request=request, kind=kind, due_at=due_at)
    session.add(deadline)
    return deadline


def void(session: Session, request: Request, kinds: Iterable[str], why: str) -> None:
    """End the pending deadlines of these kinds: what they waited for happened (``why``). One statement,
    whatever the number: a cancelled order ends all of its own at once.

    The statement does not flush the session first, unless a deadline was added and not flushed yet
    (it is one that the statement must see). Nothing else that is pending changes what it matches:
    deadlines are only ever added, or moved out of ``pending`` by this statement or by the sweep,
    whose in-hand rows are written at the next flush whatever this wrote. So a sweep's batch is
    flushed once, not once per order it cancels (bench/README.md, § sweep).
    """
    if request.id is None or any(isinstance(added, Deadline) for added in session.new):
        session.flush()  # a request opened in this transaction, or a deadline added: the statement sees them
    session.execute(update(Deadline).where(Deadline.request_id == request.id, Deadline.kind.in_(list(kinds)),
                                           Deadline.state == "pending")
                    .values(state="void", closed_at=utcnow(), outcome=why)
                    .execution_options(synchronize_session=False, autoflush=False))


@dataclass
class Swept:
    """What one ``run_due`` did: the deadlines done, those whose handler failed, the mails to send."""

    done: list[str] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    outbox_ids: list[int] = field(default_factory=list)


BATCH = 100  # deadlines done in one transaction: a commit (and its wait for the disk) for each would cost more


def _claim(session: Session, skip_locked: bool, skip: list[int], limit: int) -> list[Deadline]:
    query = (select(Deadline).where(Deadline.state == "pending", Deadline.due_at <= utcnow())
             .order_by(Deadline.due_at, Deadline.id).limit(limit))
    if skip:
        query = query.where(Deadline.id.not_in(skip))
    return list(session.scalars(query.with_for_update(skip_locked=True) if skip_locked else query))


def run_due(context: Context, handlers: Mapping[str, Handler], most: int = 10_000,
            read_ahead: ReadAhead | None = None) -> Swept:
    """Do every deadline due now, oldest first, ``BATCH`` to a transaction (see the module).

    A handler that fails rolls its whole batch back; the batch is done again without it, and it
    stays pending for the next sweep. A failure that is not a handler's (the database is away)
    leaves everything pending and is raised: the sweep is tried again at its next turn.
    """
    swept = Swept()
    skip_locked = context.engine.dialect.name == "postgresql"
    while len(swept.done) + len(swept.failed) < most:
        failing: tuple[int, str, int] | None = None  # the deadline in hand: id, kind, request
        lines: list[str] = []
        try:
            with mailing(context, background=True) as (session, mailer):
                due = _claim(session, skip_locked, swept.failed, min(BATCH, most - len(swept.done)))
                if not due:
                    break
                held = read_ahead(mailer, due) if read_ahead is not None else None  # noqa: F841 (see ReadAhead)
                for deadline in due:
                    failing = (deadline.id, deadline.kind, deadline.request_id)
                    outcome = handlers[deadline.kind](session, context.settings, mailer, deadline)
                    deadline.state, deadline.closed_at, deadline.outcome = "done", utcnow(), outcome
                    lines.append(f"deadline {deadline.id} ({deadline.kind} of #{deadline.request_id}): {outcome}")
                failing = None
        except Exception:
            if failing is None:
                raise
            log.exception("deadline %s (%s of request #%s) failed; the others of its batch are done again "
                          "without it", *failing)
            swept.failed.append(failing[0])
            continue
        for line in lines:
            log.info("%s", line)
        swept.done += lines
        swept.outbox_ids += mailer.outbox_ids
    return swept

