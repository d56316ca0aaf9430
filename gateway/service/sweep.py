"""The deadline sweep: what is due is done, once, whenever the sweep runs.

Each step is idempotent (an expired quote is no longer open), so a sweep that runs
twice, or again after a restart, changes nothing more.

The database, not the broker, says what is left to do: a Redis that restarts loses its queue,
and an enqueue can fail while the broker is away. So the sweep also queues again the work that
has waited past ``[gateway] requeue_seconds`` (``requeue``); doing it twice is harmless, since
each task claims its rows (a processed message, a sent mail, a followed-up quote is skipped).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from gateway import queues, revoked
from gateway.clock import utcnow
from gateway.context import Context
from gateway.deadlines import run_due
from gateway.intake.admission import enqueue
from gateway.models import Inbound, Outbox, Participant
from gateway.orders.due import HANDLERS, read_ahead
from gateway.orders.quote_page import unfollowed
from gateway.orders.quotes import expire_quotes
from gateway.transaction import mailing

log = logging.getLogger("gateway.sweep")


def publish_revoked(context: Context) -> None:
    """The participants removed from their requests, for the SMTP listeners to refuse (``revoked``)."""
    with context.sessions() as session:
        ids = session.scalars(select(Participant.id).where(Participant.active.is_(False))).all()
    if revoked.publish(context.settings.data_dir, ids) and ids:
        log.info("reply addresses no longer taken (their participants were removed): %s", len(ids))


@dataclass(frozen=True)
class Sweep:
    """What one sweep did: quotes expired, deadlines done (a line each) or failed, mails to send."""

    expired_quotes: list[int]
    deadlines: list[str]
    failed: list[int]
    outbox_ids: list[int]


def sweep(context: Context) -> Sweep:
    """Expire quotes past their validity, then do every due deadline, oldest first."""
    with mailing(context, background=True) as (session, mailer):
        expired = expire_quotes(session, context.settings, mailer)
    if expired:
        log.info("quotes expired: %s", ", ".join(str(q) for q in expired))
    due = run_due(context, HANDLERS, read_ahead=read_ahead)
    return Sweep(expired, due.done, due.failed, mailer.outbox_ids + due.outbox_ids)


@dataclass(frozen=True)
class Requeued:
    inbound: int
    decisions: int
    outbox: int

    def __bool__(self) -> bool:
        return bool(self.inbound or self.decisions or self.outbox)


SEND_TOGETHER = 50


def requeue(context: Context, waited_since: datetime | None = None) -> Requeued:
    """Queue again the stored messages not processed, the quote decisions not followed up and the mails
    not sent: all of them (at start), or those waiting since before ``waited_since`` (a mail to retry,
    since its next attempt was due)."""
    inbound_query = select(Inbound.id).where(Inbound.status == "pending")
    outbox_query = select(Outbox.id).where(Outbox.status == "pending")
    if waited_since is not None:
        inbound_query = inbound_query.where(Inbound.received_at < waited_since)
        outbox_query = outbox_query.where(or_(Outbox.next_attempt_at < waited_since, Outbox.next_attempt_at.is_(None)
                                              & (Outbox.created_at < waited_since)))
    with context.sessions() as session:
        inbound = list(session.scalars(inbound_query.order_by(Inbound.id)))
        decisions = unfollowed(session, waited_since)
        outbox = list(session.scalars(outbox_query.order_by(Outbox.id)))
    enqueue(inbound)
    for quote_id in decisions:
        queues.follow_up_quote(quote_id)
    for start in range(0, len(outbox), SEND_TOGETHER):
        queues.send_mail(outbox[start:start + SEND_TOGETHER])
    return Requeued(len(inbound), len(decisions), len(outbox))


def requeue_stalled(context: Context) -> None:
    """``requeue`` what has waited longer than ``[gateway] requeue_seconds``: its broker message was lost."""
    stalled = requeue(context, utcnow() - timedelta(seconds=context.settings.requeue_seconds))
    if stalled:
        log.warning("queued again, after waiting over %s s (the broker lost them, or was away): %s stored "
                    "messages, %s quote decisions, %s outgoing mails", context.settings.requeue_seconds,
                    stalled.inbound, stalled.decisions, stalled.outbox)


class Sweeper:
    """Runs ``sweep`` every ``[gateway] sweep_seconds`` in a daemon thread until stopped, and
    ``requeue_stalled`` at most once every ``requeue_seconds``: work that waits because the database
    is away is queued again once a period, not at every sweep."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.interval = context.settings.sweep_seconds
        self._requeued_at = time.monotonic()  # the start queued everything left
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                publish_revoked(self.context)
                if time.monotonic() - self._requeued_at >= self.context.settings.requeue_seconds:
                    self._requeued_at = time.monotonic()
                    requeue_stalled(self.context)
                swept = sweep(self.context)
                if swept.outbox_ids:
                    queues.send_mail(swept.outbox_ids)
            except Exception:  # the next sweep tries again; a deadline is never lost, only late
                log.exception("deadline sweep failed")
            self._stop.wait(self.interval)
