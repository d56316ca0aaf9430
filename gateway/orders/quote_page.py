"""The customer's side of a quote: what a link shows, and the one decision it allows.

``quote_for_token`` only reads (a GET never changes anything: mail scanners follow
links). ``decide`` changes the quote once, with a conditional UPDATE, so two POSTs
racing each other decide once; the second sees the first one's outcome. ``follow_up``
then applies the decision to the order, once, the same way. The web layer
maps ``QuoteProblem.http_status`` to its answer: 403 forged, 404 unknown, 410 gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.helpdesk import record_event
from gateway.notify import Mailer
from gateway.orders.card import replace_items, set_label
from gateway.orders.mail import tell_coordinators
from gateway.orders.models import Quote
from gateway.orders.money import format_amount
from gateway.orders.quotes import AWAITING_RESPONSE, announce_expiry, close_quote, quote_context
from gateway.payments.ledger import update_payment_status
from gateway.settings import Settings
from gateway.tokens import mint_quote_token, verify_quote_token

GONE = ("replaced", "withdrawn", "expired")
DECIDED = ("accepted", "declined")
REASON_LIMIT = 2000


@dataclass(frozen=True)
class QuoteItemView:
    description: str
    quantity: int
    unit_price: str
    amount: str


@dataclass(frozen=True)
class QuoteView:
    """What the page shows of one quote; amounts are ``"450.00"`` strings."""

    token: str
    order_number: int
    version: int
    subject: str
    amount: str
    currency: str
    items: list[QuoteItemView]
    valid_until: datetime
    status: str  # open, accepted, declined, withdrawn, replaced, expired (an open quote past its date: expired)
    reason: str
    created_at: datetime
    decided_at: datetime | None
    locale: str
    customer_name: str
    site_name: str
    replaced_by: QuoteView | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True)
class QuoteProblem:
    """Why a link shows no decidable quote: ``forged`` (403), ``unknown`` (404), or gone (410)."""

    kind: str  # forged, unknown, replaced, withdrawn, expired
    view: QuoteView | None = None

    @property
    def http_status(self) -> int:
        return {"forged": 403, "unknown": 404}.get(self.kind, 410)


@dataclass(frozen=True)
class QuoteDecision:
    """The quote's outcome after a POST; ``changed`` is False when it had been decided already.

    A changed decision is followed up (``follow_up``) once it has committed.
    """

    outcome: str  # accepted, declined
    quote_id: int
    changed: bool = field(default=True)


def _view(settings: Settings, quote: Quote, now: datetime, *, follow: bool = True) -> QuoteView:
    order = quote.order
    status = "expired" if quote.status == "open" and quote.valid_until < now else quote.status
    replaced_by = quote.replaced_by if follow else None
    return QuoteView(
        token=mint_quote_token(settings.secret_key, quote.id, quote.version), order_number=order.number,
        version=quote.version, subject=order.request.subject, amount=format_amount(quote.amount),
        currency=quote.currency,
        items=[QuoteItemView(i.description, i.quantity, format_amount(i.unit_price), format_amount(i.amount))
               for i in quote.items],
        valid_until=quote.valid_until, status=status, reason=quote.reason, created_at=quote.created_at,
        decided_at=quote.decided_at, locale=order.customer.locale or settings.locale,
        customer_name=order.customer.name, site_name=settings.site_name,
        replaced_by=_view(settings, replaced_by, now, follow=False) if replaced_by is not None else None)


def _find(session: Session, settings: Settings, token: str) -> Quote | QuoteProblem:
    named = verify_quote_token(settings.secret_key, token)
    if named is None:
        return QuoteProblem("forged")
    quote = session.get(Quote, named.quote_id)
    if quote is None or quote.version != named.version:
        return QuoteProblem("unknown")
    return quote


def quote_for_token(session: Session, settings: Settings, token: str) -> QuoteView | QuoteProblem:
    """The quote a link names, for ``GET /quote/{token}``; reads only.

    Open and decided quotes are a ``QuoteView`` (the page shows the buttons or the outcome);
    replaced, withdrawn and expired ones a ``QuoteProblem`` (410) with what replaced them.
    """
    found = _find(session, settings, token)
    if isinstance(found, QuoteProblem):
        return found
    view = _view(settings, found, utcnow())
    return QuoteProblem(view.status, view) if view.status in GONE else view


def decide(session: Session, settings: Settings, mailer: Mailer, token: str, accept: bool,
           reason: str = "") -> QuoteDecision | QuoteProblem:
    """Accept or decline the quote a link names, once; the caller commits, then sends
    ``mailer.outbox_ids`` and enqueues the ``follow_up`` of a changed decision.

    Only the decision is made here, so that a click is answered at once whatever the load:
    the order's new price, its return to the inbox and the coordinators' mails follow in
    ``follow_up``. The decided quote with no ``followed_up_at`` is the durable promise of
    them (resumed at start). Deciding again changes nothing and returns the first outcome.
    """
    found = _find(session, settings, token)
    if isinstance(found, QuoteProblem):
        return found
    quote, now = found, utcnow()
    if quote.status == "open" and quote.valid_until < now and close_quote(session, quote, "expired", now, reason=""):
        announce_expiry(settings, mailer, quote)
    if quote.status == "open":
        outcome = "accepted" if accept else "declined"
        if close_quote(session, quote, outcome, now, reason=reason.strip()[:REASON_LIMIT] if not accept else ""):
            return QuoteDecision(outcome, quote.id)
    session.refresh(quote)
    if quote.status in DECIDED:
        return QuoteDecision(quote.status, quote.id, changed=False)
    view = _view(settings, quote, now)
    return QuoteProblem(view.status, view)


def follow_up(session: Session, settings: Settings, mailer: Mailer, quote_id: int) -> bool:
    """Apply a decision's consequences, once even when two workers race; True when this call did.

    The coordinators are mailed (with the reason of a decline), the order comes back to the
    inbox unread with an event, and an accepted quote's amount becomes the order's total.
    """
    result = cast(CursorResult[Any], session.execute(
        update(Quote).where(Quote.id == quote_id, Quote.status.in_(DECIDED), Quote.followed_up_at.is_(None))
        .values(followed_up_at=utcnow()).execution_options(synchronize_session=False)))
    if result.rowcount != 1:
        return False
    quote = session.get(Quote, quote_id, populate_existing=True)
    assert quote is not None
    _decided(settings, mailer, quote)
    return True


def unfollowed(session: Session, decided_before: datetime | None = None) -> list[int]:
    """Decided quotes whose consequences are not applied yet (a stop or a crash came between), those
    decided before ``decided_before`` when it is given."""
    query = select(Quote.id).where(Quote.status.in_(DECIDED), Quote.followed_up_at.is_(None))
    if decided_before is not None:
        query = query.where(Quote.decided_at < decided_before)
    return list(session.scalars(query.order_by(Quote.id)))


def _decided(settings: Settings, mailer: Mailer, quote: Quote) -> None:
    order, request = quote.order, quote.order.request
    accepted = quote.status == "accepted"
    if accepted:
        order.total, order.currency = quote.amount, quote.currency
        if quote.items:
            replace_items(order, [(i.description, i.quantity, i.unit_price) for i in quote.items])
        update_payment_status(order)
    detail = f"quote v{quote.version} ({format_amount(quote.amount)} {quote.currency}) " + (
        "accepted by the customer" if accepted else "declined by the customer"
        + (f": {quote.reason}" if quote.reason else ""))
    record_event(request, "quote-accepted" if accepted else "quote-declined", detail)
    set_label(request, AWAITING_RESPONSE, False)
    request.unread = True
    request.expected_response = "coordinator"
    request.updated_at = utcnow()
    tell_coordinators(mailer, order, "quote_decided", {**quote_context(settings, quote), "accepted": accepted})
