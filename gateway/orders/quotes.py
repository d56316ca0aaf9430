"""Quotes from the coordinators' side: send one (replacing any open one), withdraw it, let it expire.

Everything runs inside the caller's transaction and writes its mails to the outbox.
The customer's side (the page behind the link) is ``gateway.orders.quote_page``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.helpdesk import record_event
from gateway.notify import Mailer
from gateway.orders.card import OrderError, set_label, set_status
from gateway.orders.mail import order_context, tell_coordinators, tell_customer
from gateway.orders.models import ZERO, Order, Quote, QuoteItem
from gateway.orders.money import LARGEST, format_amount, is_currency, parse_amount
from gateway.settings import Settings
from gateway.tokens import mint_quote_token

AWAITING_RESPONSE = "awaiting response"
QUOTABLE = ("pending", "in-progress")
# "2 x Page supplémentaire 150", "1 x Canapé d'angle : 1 500,00 €": a price may be grouped by thousands
# with spaces, as French writes it, and a colon may part it from the description.
_ITEM_LINE = re.compile(
    r"^\s*(?P<quantity>\d{1,6})\s*[xX×*]\s+(?P<description>.+?)(?P<colon>\s*:)?\s+"
    r"(?P<price>\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:[.,]\d{1,2})?|\d{1,10}(?:[.,]\d{1,2})?)"
    r"\s*(?:€|[A-Za-z]{3})?\s*$")
_GROUPED = re.compile(r"[ \u00a0\u202f]")
# An item line is short; the pattern's lazy description backtracks over a long one in quadratic time.
_LONGEST_LINE = 300


def _item(line: str) -> re.Match[str] | None:
    return _ITEM_LINE.match(line) if len(line) <= _LONGEST_LINE else None


@dataclass(frozen=True)
class QuoteLine:
    description: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


def read_quote_lines(text: str) -> list[QuoteLine]:
    """The item lines of a ``#quote`` mail: ``2 x Page supplémentaire 150`` (quantity, what, unit price).
    A line whose price reads two ways (``ambiguous_quote_lines``) is one too: the command refuses it."""
    lines: list[QuoteLine] = []
    for line in text.splitlines():
        match = _item(line)
        if match:
            price = parse_amount(_GROUPED.sub("", match["price"]))
            if price is not None and int(match["quantity"]) > 0:
                lines.append(QuoteLine(match["description"].strip(), int(match["quantity"]), price))
    return lines


def without_quote_lines(text: str) -> str:
    """The mail's text but its item lines: the coordinator's own words to the customer."""
    return "\n".join(line for line in text.splitlines() if not _item(line)).strip()


def ambiguous_quote_lines(text: str) -> list[str]:
    """Item lines whose price is grouped by plain spaces with nothing but a space before it: ``Pack 3 150``
    is 150 for a pack of three, ``Canapé 1 500`` is 1,500, and only the writer knows which. Read either
    way, a quote would go to the customer with a wrong total; a colon says it (``Pack 3 : 150``), and so
    does a no-break space, which no one types between two words (``1 500,00 €`` pasted from a mail)."""
    return [line.strip() for line in text.splitlines()
            if (match := _item(line)) and not match["colon"] and " " in match["price"]]


def quote_link(settings: Settings, quote: Quote) -> str:
    return f"{settings.base_url}/quote/{mint_quote_token(settings.secret_key, quote.id, quote.version)}"


def quote_context(settings: Settings, quote: Quote) -> dict[str, object]:
    return {"quote": quote, "version": quote.version, "amount": format_amount(quote.amount),
            "quote_currency": quote.currency, "valid_until": quote.valid_until,
            "link": quote_link(settings, quote), "reason": quote.reason,
            "quote_items": [{"description": i.description, "quantity": i.quantity,
                             "unit_price": format_amount(i.unit_price), "amount": format_amount(i.amount)}
                            for i in quote.items]}


def create_quote(session: Session, settings: Settings, mailer: Mailer, order: Order, *, author: str,
                 amount: Decimal | None = None, currency: str | None = None,
                 lines: list[QuoteLine] | None = None) -> Quote:
    """Quote version N: replaces any open quote, mails the customer the link, moves the order in progress."""
    lines = lines or []
    if order.request.status not in QUOTABLE:
        raise OrderError(f"order #{order.number} is {order.request.status}: only a pending or in-progress "
                         "order can be quoted")
    total_of_lines = sum((line.amount for line in lines), ZERO)
    if amount is None:
        if not lines:
            raise OrderError("give an amount (#quote 450) or item lines such as `2 x Page supplémentaire 150`")
        amount = total_of_lines
    elif lines and total_of_lines != amount:
        raise OrderError(f"the item lines add up to {format_amount(total_of_lines)}, "
                         f"not {format_amount(amount)}: fix one of them")
    if amount <= ZERO:
        raise OrderError("a quote needs an amount above zero")
    if amount > LARGEST or any(line.amount > LARGEST for line in lines):
        raise OrderError(f"a quote (and each of its lines) can be at most {format_amount(LARGEST)}")
    currency = (currency or order.currency).upper()
    if not is_currency(currency):
        raise OrderError(f"{currency!r} is not a currency code such as EUR")
    now = utcnow()
    previous = order.open_quote
    if previous is not None and not close_quote(session, previous, "replaced", now):
        raise DecidedMeanwhile(previous, "see the order before quoting again")
    version = (session.scalar(select(func.max(Quote.version)).where(Quote.order_id == order.number)) or 0) + 1
    quote = Quote(order=order, version=version, amount=amount, currency=currency, status="open", author_email=author,
                  valid_until=now + timedelta(days=settings.quote_validity_days), created_at=now,
                  items=[QuoteItem(position=i, description=line.description, quantity=line.quantity,
                                   unit_price=line.unit_price) for i, line in enumerate(lines)])
    session.add(quote)
    session.flush()
    if previous is not None:
        previous.replaced_by = quote
        record_event(order.request, "quote-replaced", f"quote v{previous.version} replaced by v{version}")
    record_event(order.request, "quote", f"quote v{version}: {format_amount(amount)} {currency} by {author}")
    set_status(order, "in-progress", author)
    set_label(order.request, AWAITING_RESPONSE, True)
    order.request.expected_response = "customer"
    tell_customer(mailer, order, "quote_sent", quote_context(settings, quote))
    return quote


def withdraw_quote(settings: Settings, mailer: Mailer, order: Order, author: str) -> Quote:
    """The open quote is withdrawn: its link answers "withdrawn" and the customer is told."""
    quote = withdraw_open_quote(mailer.session, order, f"by {author}", "nothing withdrawn")
    if quote is None:
        raise OrderError(f"order #{order.number} has no open quote to withdraw")
    set_label(order.request, AWAITING_RESPONSE, False)
    order.request.expected_response = "coordinator"
    tell_customer(mailer, order, "quote_withdrawn", quote_context(settings, quote))
    return quote


def withdraw_open_quote(session: Session, order: Order, how: str, what_next: str) -> Quote | None:
    """The order's open quote, if any, is withdrawn (its link then answers so) with an event saying
    ``how``. A quote the customer decided meanwhile stops the command with ``what_next``."""
    quote = order.open_quote
    if quote is None:
        return None
    if not close_quote(session, quote, "withdrawn", utcnow()):
        raise DecidedMeanwhile(quote, what_next)
    record_event(order.request, "quote-withdrawn", f"quote v{quote.version} withdrawn {how}")
    return quote


def expire_quotes(session: Session, settings: Settings, mailer: Mailer, now: datetime | None = None) -> list[int]:
    """Open quotes past their validity become ``expired``; the coordinators are told. For the sweep.

    Idempotent: an expired quote is no longer open, so a second sweep finds nothing.
    """
    now = now or utcnow()
    expired = list(session.scalars(
        select(Quote).where(Quote.status == "open", Quote.valid_until < now).order_by(Quote.id)))
    expired = [quote for quote in expired if close_quote(session, quote, "expired", now)]  # not decided meanwhile
    for quote in expired:
        announce_expiry(settings, mailer, quote)
    return [quote.id for quote in expired]


class DecidedMeanwhile(OrderError):
    """The quote was answered (or closed) by someone else between this command's read and its write."""

    def __init__(self, quote: Quote, what_next: str) -> None:
        super().__init__(f"quote v{quote.version} was {quote.status} meanwhile: {what_next}")


def close_quote(session: Session, quote: Quote, status: str, now: datetime, *, reason: str | None = None) -> bool:
    """Move the quote out of ``open`` unless someone else did first; True when this call did (``quote`` is
    read again either way). A conditional update, not a status written from what was read: the
    customer decides on the web page, in another process or on another host, and a withdrawal, a new
    version or the sweep's expiry must never write over a decision committed meanwhile."""
    values: dict[str, object] = {"status": status, "decided_at": now}
    if reason is not None:
        values["reason"] = reason
    result = cast(CursorResult[Any], session.execute(
        update(Quote).where(Quote.id == quote.id, Quote.status == "open").values(values)
        .execution_options(synchronize_session=False)))
    session.refresh(quote)
    return result.rowcount == 1


def announce_expiry(settings: Settings, mailer: Mailer, quote: Quote) -> None:
    """An expired quote brings the order back to the coordinators, whoever noticed it (sweep or click)."""
    request = quote.order.request
    record_event(request, "quote-expired", f"quote v{quote.version} expired unanswered")
    set_label(request, AWAITING_RESPONSE, False)
    request.unread = True
    request.expected_response = "coordinator"
    tell_coordinators(mailer, quote.order, "quote_expired",
                      {**order_context(quote.order), **quote_context(settings, quote)})
