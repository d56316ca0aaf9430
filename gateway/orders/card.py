"""The order card of a request: created with the request, or lazily for orders opened by mail."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.helpdesk import record_event
from gateway.models import Label, Person, Request
from gateway.orders.models import ZERO, Order, OrderItem
from gateway.orders.timeline import placed
from gateway.settings import Settings


class OrderError(Exception):
    """An order action cannot apply; the message says why and what to do instead."""


class NotAnOrder(OrderError):
    """The request is a helpdesk request: order actions do not apply to it."""


def ensure_order(session: Session, request: Request, settings: Settings | None = None) -> Order:
    """The request's order card; a new one (pending, on quote, no items yet) for a mail-created order.

    Call it when an order request is opened by mail; every order action calls it too,
    so an order whose card was never created still works.
    """
    if request.kind != "order":
        raise NotAnOrder(f"request #{request.id} is a {request.kind} request, not an order")
    if request.id is None:  # opened in this transaction: its card is keyed by its id
        session.flush()
    order = session.get(Order, request.id)
    if order is not None:
        return order
    requester = next((p for p in request.participants if p.role == "requester"), None)
    customer = requester.person if requester is not None else None
    if customer is None and requester is not None:
        customer = session.scalars(select(Person).where(Person.email == requester.email)).first()
    if customer is None:
        raise NotAnOrder(f"order #{request.id} has no customer")
    order = Order(request_id=request.id, request=request, customer=customer,
                  currency=settings.currency if settings else "EUR",
                  payment_method=settings.default_payment_method if settings else "transfer",
                  on_quote=True, source="mail", discount=ZERO, total=ZERO, amount_paid=ZERO,
                  payment_status="unpaid", tags=[], created_at=request.created_at)
    session.add(order)
    session.flush()
    if settings is not None:
        placed(session, settings, order)
    return order


def set_status(order: Order, status: str, author: str) -> None:
    """The order status (the request's ``status``), with an event saying who changed it."""
    request = order.request
    if request.status != status:
        record_event(request, "status", f"{request.status} -> {status} by {author}")
        request.status = status


def set_label(request: Request, name: str, present: bool) -> None:
    names = {label.name for label in request.labels}
    if present and name not in names:
        request.labels.append(Label(name=name))
    elif not present and name in names:
        request.labels[:] = [label for label in request.labels if label.name != name]


def recompute_total(order: Order) -> None:
    """Total = items - discounts (never below zero)."""
    subtotal = sum((item.amount for item in order.items), ZERO)
    order.total = max(subtotal - order.discount, ZERO)


def replace_items(order: Order, lines: list[tuple[str, int, Decimal]]) -> None:
    """The order's items become ``(description, quantity, unit_price)`` lines (from an accepted quote)."""
    order.items[:] = [OrderItem(position=index, description=description, quantity=quantity, unit_price=price)
                      for index, (description, quantity, price) in enumerate(lines)]
