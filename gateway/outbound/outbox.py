"""Sending outbox rows, with their attempts, errors and backoff recorded on each row."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, or_, select, update

from gateway.clock import utcnow
from gateway.context import Context
from gateway.models import Outbox, OutboxBody
from gateway.outbound.transports import PermanentError, TransientError, transport_for
from gateway.writer import writer

log = logging.getLogger("gateway.outbound")
MAX_ATTEMPTS = 8


def backoff(attempts: int) -> timedelta:
    """15 s, 30 s, 1 min, ... capped at one hour."""
    return timedelta(seconds=min(15 * 2 ** (attempts - 1), 3600))


CLAIM = timedelta(minutes=10)  # a sender that holds a claim longer is taken to have died with its process


def _claim(context: Context, outbox_ids: list[int]) -> tuple[str, list[Row[Any]]]:
    """The pending rows among ``outbox_ids`` that no other sender holds, claimed for this one and read
    in a short transaction of their own: two senders of the same ids (a message queued again by the sweep
    while the broker still held it) send each mail once, and a claim whose mails could not be read (the
    database gone meanwhile) is not kept either."""
    token, now = uuid.uuid4().hex, utcnow()
    with writer(context, background=True), context.sessions.begin() as session:
        claimed = list(session.scalars(
            update(Outbox).where(Outbox.id.in_(outbox_ids), Outbox.status == "pending",
                                 or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now))
            .values(claim=token, claimed_until=now + CLAIM).returning(Outbox.id)))
        if not claimed:
            return token, []
        return token, list(session.execute(select(Outbox.id, Outbox.sender, Outbox.recipient, OutboxBody.raw,
                                                  Outbox.template, Outbox.message_id)
                                           .join(OutboxBody, OutboxBody.outbox_id == Outbox.id)
                                           .where(Outbox.id.in_(claimed)).order_by(Outbox.id)))


def deliver_all(context: Context, outbox_ids: list[int]) -> list[int]:
    """Send the pending rows among ``outbox_ids`` that this sender could claim; returns the ids to retry later.

    The mails sent, nearly always all of them, are marked with one statement; only a failure
    loads its row to record the error and the next attempt. Claiming and marking take the writer's
    turn: on SQLite, a sender left to SQLite's own retries waited seconds behind the processor. A
    process that dies between the send and the mark leaves its rows claimed for ``CLAIM``: then they
    are sent again (at least once, never lost).
    """
    retry: list[int] = []
    token, rows = _claim(context, outbox_ids) if outbox_ids else ("", [])
    if not rows:
        return retry
    try:
        outcomes = transport_for(context.settings).deliver([(row.sender, row.recipient, row.raw) for row in rows])
    except BaseException:  # not an answer of the relay (those are outcomes): free the rows for the retry now
        with writer(context, background=True), context.sessions.begin() as session:
            session.execute(update(Outbox).where(Outbox.claim == token).values(claim=None, claimed_until=None))
        raise
    sent = [row for row, outcome in zip(rows, outcomes, strict=True) if outcome is None]
    with writer(context, background=True), context.sessions.begin() as session:
        if sent:
            session.execute(update(Outbox).where(Outbox.id.in_([row.id for row in sent]))
                            .values(status="sent", sent_at=utcnow(), last_error="", attempts=Outbox.attempts + 1,
                                    claim=None, claimed_until=None))
        for row, outcome in zip(rows, outcomes, strict=True):
            if outcome is not None and not _record_failure(session.get_one(Outbox, row.id), outcome):
                retry.append(row.id)
    for row in sent:  # once marked: the writer's turn is not held for the log
        log.info("sent %s %s to %s", row.template, row.message_id, row.recipient)
    return retry


def _record_failure(row: Outbox, error: TransientError | PermanentError) -> bool:
    """One failed try at one row, recorded on it; False when it must be retried."""
    row.attempts += 1
    row.claim, row.claimed_until = None, None
    if isinstance(error, PermanentError):
        row.status, row.last_error = "failed", str(error)
        log.error("outbox %s to %s refused: %s", row.id, row.recipient, error)
        return True
    row.last_error = str(error)
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        log.error("outbox %s to %s failed after %s attempts: %s", row.id, row.recipient, row.attempts, error)
        return True
    row.next_attempt_at = utcnow() + backoff(row.attempts)
    log.warning("outbox %s to %s: %s (attempt %s, retrying)", row.id, row.recipient, error, row.attempts)
    return False
