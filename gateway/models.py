"""The stored state, as typed SQLAlchemy 2 models.

Times are naive UTC: SQLite keeps no time zone, and one convention on both
databases is simpler than two.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import ColumnElement

from gateway.clock import utcnow


class Base(DeclarativeBase):
    pass


class Person(Base):
    """An account: coordinators, suppliers, observers and customers who wrote in."""

    __tablename__ = "people"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20), default="customer")
    locale: Mapped[str | None] = mapped_column(String(5), default=None)
    failing_since: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    invoice_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    card_reference: Mapped[str | None] = mapped_column(String(200), default=None)  # the card renewals are charged on
    page_key: Mapped[int] = mapped_column(Integer, default=0)  # in their page's link: a new one revokes the old links
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), default=None)
    on_quote: Mapped[bool] = mapped_column(Boolean, default=False)  # no set price: an order of it waits for a quote
    supplier: Mapped[Person | None] = relationship()


class Request(Base):
    """A helpdesk request or an order; its id is the number customers see as ``[#N]``."""

    __tablename__ = "requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    mailbox: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default="new")
    subject: Mapped[str] = mapped_column(Text, default="")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), default=None)
    expected_response: Mapped[str | None] = mapped_column(String(20), default=None)
    sticky_private: Mapped[bool] = mapped_column(Boolean, default=False)
    root_message_id: Mapped[str | None] = mapped_column(String(998), default=None)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"), default=None)
    delivery_ref: Mapped[str | None] = mapped_column(String(200), default=None)
    unread: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    assignee: Mapped[Person | None] = relationship()
    product: Mapped[Product | None] = relationship()
    participants: Mapped[list[Participant]] = relationship(
        back_populates="request", order_by="Participant.id", cascade="all, delete-orphan")
    comments: Mapped[list[Comment]] = relationship(
        back_populates="request", order_by="Comment.id", cascade="all, delete-orphan")
    labels: Mapped[list[Label]] = relationship(order_by="Label.name", cascade="all, delete-orphan")
    events: Mapped[list[Event]] = relationship(order_by="Event.id", cascade="all, delete-orphan")


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("request_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    name: Mapped[str] = mapped_column(String(100))


class Participant(Base):
    """One person's place in one request; the reply token names this row."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("request_id", "email"), Index("ix_participants_email", "email"))
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), default=None)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    mail_only: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # an observer from the customer's side (in the Cc of their first mail): sees what the customer sees
    customer_side: Mapped[bool] = mapped_column(Boolean, default=False)

    request: Mapped[Request] = relationship(back_populates="participants")
    person: Mapped[Person | None] = relationship()


class Comment(Base):
    """A public or private comment, or an internal note (``visibility == "note"``)."""

    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    author_email: Mapped[str] = mapped_column(String(320))
    author_role: Mapped[str] = mapped_column(String(20))
    visibility: Mapped[str] = mapped_column(String(10), default="public")
    text: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(10), default="email")
    unverified_sender: Mapped[bool] = mapped_column(Boolean, default=False)
    degraded: Mapped[str | None] = mapped_column(Text, default=None)  # why the pipeline could not apply it
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    request: Mapped[Request] = relationship(back_populates="comments")
    attachments: Mapped[list[CommentAttachment]] = relationship(cascade="all, delete-orphan")


class CommentAttachment(Base):
    """A file of a comment; the bytes live once under ``<data>/attachments`` by SHA-256."""

    __tablename__ = "comment_attachments"
    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id"))
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))


class Event(Base):
    """Something that happened to a request and is not a comment: an auto-reply, a bounce, a status change."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Deadline(Base):
    """Something the gateway must do at a time if nothing happens before (CONTRACT §10): cancel an order
    not accepted, complete one not reviewed, remind, bill a period. Written in the transaction of the
    change that starts it, voided in the transaction of the change that makes it moot, and done by
    the sweep, once, in the transaction that acts (``gateway.deadlines``)."""

    __tablename__ = "deadlines"
    __table_args__ = (Index("ix_deadlines_state_due_at", "state", "due_at"),
                      Index("ix_deadlines_request_id", "request_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    kind: Mapped[str] = mapped_column(String(40))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    state: Mapped[str] = mapped_column(String(8), default="pending")  # pending, done, void
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)  # done or voided
    outcome: Mapped[str] = mapped_column(Text, default="")  # what the sweep did, or what voided it

    request: Mapped[Request] = relationship()


class ProviderEvent(Base):
    """An event a payment provider sent (a Stripe webhook), applied once: its id is remembered."""

    __tablename__ = "provider_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Inbound(Base):
    """One raw message as received, before and after processing; ``replay`` starts from here."""

    __tablename__ = "inbound"
    __table_args__ = (Index("ix_inbound_status", "status"),
                      Index("ix_inbound_status_received_at", "status", "received_at"),
                      Index("ix_inbound_message_id", "message_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(10))
    mailbox: Mapped[str] = mapped_column(String(320))
    envelope_from: Mapped[str] = mapped_column(String(998), default="")
    envelope_to: Mapped[str] = mapped_column(Text, default="")
    raw_path: Mapped[str] = mapped_column(String(500))
    # The bytes themselves where every host reaches them (PostgreSQL); on SQLite, the file at raw_path.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, deferred=True)
    conversation: Mapped[str] = mapped_column(String(400), default="")  # its order is kept within it (pipeline.claim)
    quiet: Mapped[bool] = mapped_column(Boolean, default=False)  # imported history: its mails are never sent
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    decision: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(998), default=None)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), default=None)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    request: Mapped[Request | None] = relationship()

    @property
    def recipients(self) -> list[str]:
        """The envelope's recipients (RCPT TO), as admission wrote them; none when they cannot be read."""
        try:
            return [str(address) for address in json.loads(self.envelope_to or "[]")]
        except ValueError:
            return []


def database_now() -> ColumnElement[datetime]:
    """PostgreSQL's own time, naive UTC as the columns keep it: the one clock every host agrees on,
    for when a host was last heard from (``IntakeNode.seen_at``)."""
    return func.timezone("UTC", func.now())


class IntakeNode(Base):
    """A host that takes mail in, and the time before which everything it acknowledged is admitted
    (``pipeline.claim``): messages received later wait for it, so that a conversation keeps its order
    across hosts."""

    __tablename__ = "intake_nodes"
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    watermark: Mapped[datetime] = mapped_column(DateTime)
    seen_at: Mapped[datetime] = mapped_column(DateTime)


class AppliedMessage(Base):
    """The unique index that makes a message apply once per mailbox, whatever way it came in twice."""

    __tablename__ = "applied_messages"
    __table_args__ = (UniqueConstraint("mailbox", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(320))
    key: Mapped[str] = mapped_column(String(998))
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id"))


class MessageRef(Base):
    """A Message-ID we sent or received, and its request: what In-Reply-To and References thread by."""

    __tablename__ = "message_refs"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    outgoing: Mapped[bool] = mapped_column(Boolean, default=False)

    request: Mapped[Request] = relationship()


class Outbox(Base):
    """One mail to one recipient, written in the transaction that caused it and sent after commit.

    Its bytes are a row of their own (``OutboxBody``): SQLite rewrites a whole row, blob and all, at
    each change of it, and a mail's row changes twice as it is sent (claimed, then marked sent).
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_recipient_request", "recipient", "request_id", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), default=None)
    sender: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(String(200), default="")
    message_id: Mapped[str] = mapped_column(String(998))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    # Who is sending it now (``outbound.outbox.deliver_all``), until when: never two senders at once.
    claim: Mapped[str | None] = mapped_column(String(32), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    body: Mapped[OutboxBody] = relationship(cascade="all, delete-orphan")

    @property
    def raw(self) -> bytes:
        """The mail's bytes, read when first asked for (the sender reads them with its claimed rows)."""
        return self.body.raw

    @raw.setter
    def raw(self, raw: bytes) -> None:
        self.body = OutboxBody(raw=raw)


class OutboxBody(Base):
    """The bytes of one outbox mail, written once."""

    __tablename__ = "outbox_bodies"
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), primary_key=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class ImapState(Base):
    """Where the poller of one IMAP folder stands: UIDs above ``last_uid`` are new."""

    __tablename__ = "imap_state"
    __table_args__ = (UniqueConstraint("mailbox", "folder"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(320))
    folder: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)


class RuleMatch(Base):
    """A rule that matched while processing a message: which, on what event, why, and what it did."""

    __tablename__ = "rule_matches"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"), default=None)
    rule: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(20))
    why: Mapped[str] = mapped_column(Text)
    did: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    request: Mapped[Request] = relationship()
