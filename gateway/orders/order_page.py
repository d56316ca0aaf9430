"""The customer's side of an order (CONTRACT §10): what its page shows, and the three things it lets
them do when each is open: complete a delivered order (with a rating and a review), ask a revision
within the review window, ask to cancel before delivery.

``order_for_token`` only reads (a GET never acts: mail scanners follow links). ``act`` runs one
action in the caller's transaction, on the order row locked for it, so two POSTs racing each other
act once; an action that is not open at this stage is an ``OrderProblem`` (409), never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Deadline
from gateway.notify import Mailer
from gateway.orders.card import OrderError
from gateway.orders.lifecycle import OPEN, WORKING, ask_cancellation, ask_revision, complete_by_customer
from gateway.orders.mail import order_context
from gateway.orders.models import Order
from gateway.orders.quotes import quote_link
from gateway.settings import Settings
from gateway.tokens import verify_order_token

# What the customer sees of an order's deadlines: theirs, not the team's reminders.
_CUSTOMER_DEADLINES = {"acceptance": "acceptance", "delivery": "delivery", "review": "review",
                       "prepayment-cancel": "payment"}


@dataclass(frozen=True)
class OrderView:
    token: str
    number: int
    subject: str
    status: str
    total: str
    amount_paid: str
    currency: str
    items: list[dict[str, object]]
    deadlines: list[tuple[str, datetime]]  # (what, when), pending ones only
    open_actions: tuple[str, ...]
    review_rating: int | None
    review_text: str | None
    revision_status: str | None
    cancellation_status: str | None
    locale: str
    quote_link: str | None  # the open quote's page: the order waits for the customer's decision there
    tracking: str | None
    shipping_address: str


@dataclass(frozen=True)
class OrderProblem:
    kind: str  # forged, unknown, closed (the action is not open now)
    http_status: int
    view: OrderView | None = None


def _open_actions(order: Order, deadlines: list[Deadline]) -> tuple[str, ...]:
    status = order.request.status
    actions: list[str] = []
    if status == "delivered":
        actions.append("complete")
        # A refusal or a new delivery restarts the window: the newest review deadline is the one that counts.
        reviews = [d for d in deadlines if d.kind == "review"]
        review_open = not reviews or any(d.state == "pending" for d in reviews)
        if order.revision_status != "requested" and review_open:
            actions.append("revision")
    if (status in OPEN or (status in WORKING and order.decided_at is not None)) \
            and order.cancellation_status != "requested":
        actions.append("cancel")
    return tuple(actions)


def _view(session: Session, settings: Settings, token: str, order: Order) -> OrderView:
    deadlines = list(session.scalars(select(Deadline).where(Deadline.request_id == order.number)
                                     .order_by(Deadline.due_at)))
    shown = order_context(order)
    customer = order.customer
    return OrderView(
        token=token, number=order.number, subject=order.request.subject, status=order.request.status,
        total=shown["total"], amount_paid=shown["amount_paid"], currency=order.currency, items=shown["items"],
        deadlines=[(_CUSTOMER_DEADLINES[d.kind], d.due_at) for d in deadlines
                   if d.state == "pending" and d.kind in _CUSTOMER_DEADLINES],
        open_actions=_open_actions(order, deadlines), review_rating=order.review_rating,
        review_text=order.review_text, revision_status=order.revision_status,
        cancellation_status=order.cancellation_status, locale=customer.locale or "fr",
        quote_link=quote_link(settings, order.open_quote) if order.open_quote else None, tracking=order.tracking,
        shipping_address=order.shipping_address)


def order_for_token(session: Session, settings: Settings, token: str, *, lock: bool = False
                    ) -> tuple[Order, OrderView] | OrderProblem:
    number = verify_order_token(settings.secret_key, token)
    if number is None:
        return OrderProblem("forged", 404)
    query = select(Order).where(Order.request_id == number)
    order = session.scalars(query.with_for_update() if lock else query).first()
    if order is None:
        return OrderProblem("unknown", 404)
    return order, _view(session, settings, token, order)


def act(session: Session, settings: Settings, mailer: Mailer, token: str, action: str, *,
        rating: int | None = None, text: str = "") -> OrderView | OrderProblem:
    """One action of the page; the view after it, or why it is not open now."""
    found = order_for_token(session, settings, token, lock=True)
    if isinstance(found, OrderProblem):
        return found
    order, view = found
    if action not in view.open_actions:
        return OrderProblem("closed", 409, view)
    try:  # each step strips and bounds the customer's text (``lifecycle.REVIEW_LIMIT``)
        if action == "complete":
            complete_by_customer(settings, mailer, order, rating, text)
        elif action == "revision":
            ask_revision(settings, mailer, order, text)
        else:
            ask_cancellation(settings, mailer, order, text)
    except OrderError:
        return OrderProblem("closed", 409, view)
    session.flush()
    return _view(session, settings, token, order)
