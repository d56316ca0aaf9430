"""Processing one stored message: parse, dedupe, apply, notify, in one transaction.

The step is idempotent: the ``applied_messages`` unique index lets a message change
state once per mailbox, so ``replay`` and a restart after a crash are always safe.
Mail goes out only after the commit (the caller enqueues the returned outbox ids).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.appends import write_appended
from gateway.clock import utcnow
from gateway.context import Context
from gateway.intake.admission import read_raw
from gateway.logs import about, applying
from gateway.mail.parse import ParsedMail, dedupe_key, parse
from gateway.metrics import APPLIED, APPLY_SECONDS
from gateway.models import AppliedMessage, Inbound
from gateway.notify import Mailer
from gateway.pipeline.apply import Opened, Ownerless, apply_message, look_up
from gateway.pipeline.degrade import GATEWAY_FAULTS, keep_degraded
from gateway.pipeline.message import CommandsRefused, Incoming
from gateway.pipeline.refusal import refuse_commands
from gateway.pipeline.thread import read_ahead_tokens

log = logging.getLogger("gateway.inbound")

@dataclass(frozen=True)
class Ahead:
    """A stored message, read and parsed: ahead by the serving process, or by the processor itself."""

    raw: bytes
    parsed: ParsedMail

    @classmethod
    def read(cls, context: Context, raw: bytes | None, raw_path: str) -> Ahead:
        """``raw``: the bytes kept in the row (PostgreSQL), else None and they are read from ``raw_path``."""
        raw = read_raw(context, raw, raw_path)
        return cls(raw, parse(raw))


def read_and_parse(context: Context, inbound_ids: list[int]) -> dict[int, Ahead]:
    """Read and parse messages waiting to be applied, so that the one writer only applies them.

    A message that cannot be read here is left out: the processor reads it again and records why.
    """
    with context.sessions() as session:
        stored = session.execute(select(Inbound.id, Inbound.raw, Inbound.raw_path)
                                 .where(Inbound.id.in_(inbound_ids), Inbound.status == "pending")).all()
    ahead = {}
    for inbound_id, raw, raw_path in stored:
        try:
            ahead[inbound_id] = Ahead.read(context, raw, raw_path)
        except Exception as error:  # recorded when the processor meets it
            log.debug("message %s not read ahead: %s", inbound_id, error)
    return ahead


@dataclass
class Outcome:
    """What processing decided, for the log line and ``inbound.decision``."""

    status: str  # processed, duplicate, degraded, failed
    decision: str
    request_id: int | None = None
    message_id: str | None = None
    outbox_ids: list[int] = field(default_factory=list)
    received_at: datetime | None = None  # applied now: when it was stored


def _read(context: Context, session: Session, mailer: Mailer, row: Inbound | None,
          inbound_id: int, ahead: Ahead | None) -> Incoming | Outcome:
    """The stored message parsed (here, unless it was ahead), not yet claimed; an Outcome when there
    is nothing to apply."""
    if row is None:
        return Outcome("failed", f"no stored message {inbound_id}")
    if row.status in ("processed", "duplicate"):
        return Outcome(row.status, row.decision, row.request_id, row.message_id)
    ahead = ahead or Ahead.read(context, row.raw, row.raw_path)
    raw, parsed = ahead.raw, ahead.parsed
    settings = context.settings
    mailbox = settings.mailbox_for(row.mailbox) or settings.first_helpdesk()
    if mailbox is None:
        raise ValueError(f"no mailbox for {row.mailbox} in the configuration")
    return Incoming(session, settings, mailer, row, parsed, mailbox, dedupe_key(parsed, raw), raw)


def process(context: Context, inbound_id: int, ahead: Ahead | None = None) -> Outcome:
    """Apply one stored message once; safe to call again for the same id. Every line logged meanwhile, its
    commit's included, is about it."""
    with applying(inbound_id, ahead.parsed.message_id if ahead else None):
        outcome = _in_one_transaction(context, [inbound_id], {inbound_id: ahead} if ahead else {}, alone=True)[0]
    return mark(context, inbound_id, outcome) if outcome.status == "duplicate" else outcome


def _commit(session: Session, mailer: Mailer) -> None:
    """The transaction's last writes, in plain sight: the rows only appended (rule matches, Message-IDs)
    and the mails; then the commit."""
    write_appended(session)
    mailer.write_outbox()
    session.commit()


def _processed(incoming: Incoming, decision: str | Opened) -> Outcome:
    """Mark the row processed, once what it did has been flushed (a request it opened has its number);
    the outbox ids are the caller's to add once the transaction has committed."""
    told = str(decision)
    if incoming.parsed.defects:
        told += f" [defects: {', '.join(sorted(set(incoming.parsed.defects)))}]"
    row = incoming.row
    row.status, row.decision, row.processed_at = "processed", told, utcnow()
    row.message_id = incoming.parsed.message_id
    return Outcome("processed", told, row.request_id, row.message_id, received_at=row.received_at)


class _NotTogether(Exception):
    """A message of a batch is not a plain one: the batch is done one message per transaction."""


def process_batch(context: Context, inbound_ids: list[int], ahead: dict[int, Ahead] | None = None) -> list[Outcome]:
    """Apply several stored messages in one transaction: one commit and one read of what they share.

    Only plain messages go together. If any of them is a duplicate, has refused commands or
    fails, nothing of the batch is kept and each message is done alone (``process_safely``),
    so no message changes what happens to another. ``ahead``: messages already read and parsed.
    """
    ahead = ahead or {}
    if len(inbound_ids) == 1:
        return [process_safely(context, inbound_ids[0], ahead.get(inbound_ids[0]))]
    try:
        outcomes = _in_one_transaction(context, inbound_ids, ahead, alone=False)
    except Exception as error:  # each one alone, where a failure is kept with its reason
        # Said aloud unless a message is simply not a plain one: a fault of the batch path itself would
        # otherwise cost only speed, unseen.
        log.log(logging.DEBUG if isinstance(error, _NotTogether | Ownerless) else logging.WARNING,
                "batch of %s messages done one by one: %s: %s", len(inbound_ids), type(error).__name__, error)
        return [process_safely(context, inbound_id, ahead.get(inbound_id)) for inbound_id in inbound_ids]
    for inbound_id, outcome in zip(inbound_ids, outcomes, strict=True):
        finished(inbound_id, outcome)
    return outcomes


def _in_one_transaction(context: Context, inbound_ids: list[int], ahead: dict[int, Ahead], *,
                        alone: bool) -> list[Outcome]:
    """Every message is read and parsed first, then all are claimed with one statement, applied in order,
    and committed together. ``alone``: a single message, for which being applied before (a duplicate)
    or having commands refused is its outcome; in a batch, either raises ``_NotTogether``."""
    with context.sessions() as session:
        mailer = Mailer(session, context.settings)
        rows = {row.id: row for row in session.scalars(select(Inbound).where(Inbound.id.in_(inbound_ids)))}
        batch = []
        for inbound_id in inbound_ids:
            incoming = _read(context, session, mailer, rows.get(inbound_id), inbound_id, ahead.get(inbound_id))
            if isinstance(incoming, Outcome):
                if alone:
                    return [incoming]
                raise _NotTogether(f"message {inbound_id}: {incoming.status}")
            batch.append(incoming)
        try:
            session.execute(insert(AppliedMessage), [
                {"mailbox": incoming.mailbox.address, "key": incoming.key, "inbound_id": incoming.row.id}
                for incoming in batch])
        except IntegrityError as error:
            if alone:
                key, message_id = batch[0].key, batch[0].parsed.message_id
                return [Outcome("duplicate", f"already applied ({key})", message_id=message_id)]
            raise _NotTogether("a message of the batch was applied before") from error
        mailer.read_ahead(*read_ahead_tokens(session, [(i.parsed, i.envelope_to) for i in batch], context.settings))
        mailer.read_ahead(*set(look_up(session, batch).threads.values()))
        decisions, marks = [], [0]
        for incoming in batch:
            with applying(incoming.row.id, incoming.parsed.message_id):
                decisions.append(_decide(incoming, alone))
            marks.append(mailer.written)
            if incoming.row.quiet:
                mailer.quiet(marks[-2], marks[-1])
        session.flush()
        outcomes = [_processed(incoming, decision) for incoming, decision in zip(batch, decisions, strict=True)]
        _commit(session, mailer)
    for outcome, start, end in zip(outcomes, marks, marks[1:], strict=False):
        outcome.outbox_ids = mailer.outbox_ids_between(start, end)
    return outcomes


def _decide(incoming: Incoming, alone: bool) -> str | Opened:
    """What the message does; commands that cannot apply roll back all it did, and (alone) are refused."""
    try:
        return apply_message(incoming)
    except CommandsRefused as refused:
        if not alone:
            raise _NotTogether(f"message {incoming.row.id}: commands refused") from refused
        incoming.session.rollback()
        return refuse_commands(incoming, refused)


def mark(context: Context, inbound_id: int, outcome: Outcome) -> Outcome:
    """Record what became of a message that applied nothing: a duplicate, a failure. A row another
    applier committed meanwhile (the import and a processor, say) keeps what that one recorded."""
    with context.sessions.begin() as session:
        session.execute(update(Inbound).where(Inbound.id == inbound_id, Inbound.status.in_(("pending", "failed")))
                        .values(status=outcome.status, decision=outcome.decision, processed_at=utcnow()))
    return outcome


def process_safely(context: Context, inbound_id: int, ahead: Ahead | None = None) -> Outcome:
    """``process``, but one message never stops the others, and never goes without an owner: a message
    that breaks the pipeline is kept degraded (``degrade``); one that meets a fault of the gateway
    itself, or that cannot even be kept degraded, is marked failed for ``gateway replay --failed``."""
    try:
        outcome = process(context, inbound_id, ahead)
    except GATEWAY_FAULTS as error:
        outcome = _failed(context, inbound_id, error)
    except Exception as error:
        outcome = _degrade(context, inbound_id, ahead, error)
    finished(inbound_id, outcome)
    return outcome


def _degrade(context: Context, inbound_id: int, ahead: Ahead | None, error: Exception) -> Outcome:
    log.error("message %s could not be applied: %s: %s; keeping it degraded", inbound_id, type(error).__name__,
              error, exc_info=not isinstance(error, Ownerless),
              extra=about(inbound_id, ahead.parsed.message_id if ahead else None))
    try:
        with context.sessions() as session:
            stored = session.execute(select(Inbound.raw, Inbound.raw_path).where(Inbound.id == inbound_id)).first()
        if stored is None:
            return _failed(context, inbound_id, LookupError(f"no stored message {inbound_id}"))
        raw = ahead.raw if ahead is not None else read_raw(context, *stored)
        kept = keep_degraded(context, inbound_id, raw, f"{type(error).__name__}: {error}")
    except Exception as second:  # the last resort: the raw message stays where it is
        return _failed(context, inbound_id, second)
    if kept is None:
        return mark(context, inbound_id, Outcome("duplicate", "already applied (kept degraded before)"))
    return Outcome("degraded", kept.decision, kept.request_id, kept.message_id, kept.outbox_ids)


def _failed(context: Context, inbound_id: int, error: BaseException) -> Outcome:
    return fail(context, inbound_id, f"{type(error).__name__}: {error}", error)


def fail(context: Context, inbound_id: int, reason: str, error: BaseException | None = None) -> Outcome:
    """Mark a message failed, kept for ``gateway replay``: a fault of the gateway, not of the message."""
    log.error("message %s failed: %s (kept; run `gateway replay %s`)", inbound_id, reason, inbound_id,
              exc_info=error, extra=about(inbound_id))
    try:
        return mark(context, inbound_id, Outcome("failed", reason))
    except GATEWAY_FAULTS:  # the database is gone: the row stays pending, taken again at the next start
        return Outcome("failed", reason)


def finished(inbound_id: int, outcome: Outcome) -> None:
    """What became of a message, once: its log line and its count (``/metrics``)."""
    log.info("message %s %s: %s: %s", inbound_id, outcome.message_id or "(no Message-ID)", outcome.status,
             outcome.decision, extra=about(inbound_id, outcome.message_id))
    APPLIED.labels(outcome.status).inc()
    if outcome.received_at is not None:
        APPLY_SECONDS.observe(max(0.0, (utcnow() - outcome.received_at).total_seconds()))
