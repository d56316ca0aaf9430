"""A customer's own page (``/me/{token}``): every request and order they opened, its status, the last
answer they were sent, its quotes, and the links to the quote and order pages. Read-only, no login: the link in
the footer of every mail they get is the key, as strong as a reply token, and a new ``page_key``
(``gateway people set EMAIL --new-page-link``) revokes every link sent before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway.models import Participant, Person, Request
from gateway.orders.mail import order_link
from gateway.orders.models import Order
from gateway.orders.quote_page import GONE
from gateway.orders.quotes import quote_link
from gateway.settings import Settings
from gateway.tokens import verify_person_token

EXCERPT = 280


@dataclass(frozen=True)
class QuoteLine:
    version: int
    amount: Decimal
    currency: str
    status: str
    link: str | None


@dataclass(frozen=True)
class Line:
    number: int
    kind: str
    subject: str
    status: str
    created_at: datetime
    last_answer: str  # the last public comment, cut at ``EXCERPT`` characters
    order_link: str | None
    quotes: list[QuoteLine]  # newest first


@dataclass(frozen=True)
class CustomerView:
    name: str
    email: str
    locale: str
    lines: list[Line]


def customer_view(session: Session, settings: Settings, token: str) -> CustomerView | None:
    """What the page shows, or None: a forged link, an unknown account, or a link revoked since."""
    named = verify_person_token(settings.secret_key, token)
    person = session.get(Person, named[0]) if named is not None else None
    if named is None or person is None or named[1] != (person.page_key or 0) % 65536:
        return None
    requests = list(session.scalars(
        select(Request).join(Participant).where(Participant.email == person.email, Participant.role == "requester")
        .options(selectinload(Request.comments)).order_by(Request.id.desc())))
    orders = {order.request_id: order for order in session.scalars(
        select(Order).where(Order.request_id.in_([r.id for r in requests])).options(selectinload(Order.quotes)))}
    lines = []
    for request in requests:
        public = [c for c in request.comments if c.visibility == "public" and not c.unverified_sender]
        order = orders.get(request.id)
        quotes = [QuoteLine(q.version, q.amount, q.currency, q.status,
                            # a withdrawn, replaced or expired one's page only says so (410): listed, not linked
                            quote_link(settings, q) if q.status not in GONE else None)
                  for q in sorted(order.quotes, key=lambda q: -q.version)] if order else []
        lines.append(Line(request.id, request.kind, request.subject, request.status, request.created_at,
                          public[-1].text[:EXCERPT] if public else "",
                          order_link(settings, order) if order else None, quotes))
    return CustomerView(person.name or "", person.email, person.locale or settings.locale, lines)
