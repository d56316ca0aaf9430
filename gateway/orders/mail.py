"""The order mails: what the customer and the coordinators are told, with amounts as text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.helpdesk import join
from gateway.notify import Mailer, coordinators_to_tell, tell_team
from gateway.orders.models import Order
from gateway.orders.money import format_amount
from gateway.outbound.compose import MailFile
from gateway.settings import Settings
from gateway.tokens import mint_order_token


def order_context(order: Order) -> dict[str, Any]:
    """What every order template may show; amounts are already ``"450.00"`` strings."""
    return {
        "order": order,
        "number": order.number,
        "currency": order.currency,
        "total": format_amount(order.total),
        "amount_paid": format_amount(order.amount_paid),
        "amount_due": format_amount(order.amount_due),
        "discount": format_amount(order.discount),
        "payment_method": order.payment_method,
        "items": [{"description": item.description or (item.product.name if item.product else item.offer),
                   "offer": item.offer, "quantity": item.quantity, "unit_price": format_amount(item.unit_price),
                   "amount": format_amount(item.amount)} for item in order.items],
        "also_commands": _also_commands(order),
    }


def _also_commands(order: Order) -> tuple[str, ...]:
    """The commands the order's own state makes worth naming to the team before the stage's own
    (``outbound.guide.next_commands``): a customer's request to answer, a subscription running."""
    named = tuple(name for name, status in (("cancellation", order.cancellation_status),
                                            ("revision", order.revision_status)) if status == "requested")
    subscription = order.subscription
    if subscription is not None and subscription.status != "inactive":
        named += ("plan", "terminate")
    return named


def order_link(settings: Settings, order: Order) -> str:
    """The customer's order page (CONTRACT §10): every mail to the customer about an order carries it."""
    return f"{settings.base_url}/order/{mint_order_token(settings.secret_key, order.number)}"


def tell_customer(mailer: Mailer, order: Order, event: str, context: dict[str, Any],
                  files: Sequence[MailFile] = (), *, secretless: bool = False) -> None:
    """``event.customer`` to the order's customer (never to anyone else), with the order page link
    (``secretless``: see ``Mailer.send``)."""
    requester = next((p for p in order.request.participants if p.role == "requester"), None)
    if requester is None:
        requester = join(mailer.session, order.request, order.customer.email, role="requester",
                         person=order.customer)
    mailer.send(order.request, requester, event, "customer",
                {**order_context(order), "order_link": order_link(mailer.settings, order), **context}, files=files,
                secretless=secretless)


def tell_coordinators(mailer: Mailer, order: Order, event: str, context: dict[str, Any], author: str = "") -> None:
    """``event.coordinator`` to the coordinators to tell, and to the coordinator who acted if not among them."""
    full = {**order_context(order), **context}
    tell_team(mailer, order.request, event, full)
    if not author or author in {p.email for p in coordinators_to_tell(mailer, order.request)}:
        return
    person = next((p for p in mailer.coordinators() if p.email == author), None)
    if person is not None:
        participant = join(mailer.session, order.request, author, role="coordinator", person=person)
        mailer.send(order.request, participant, event, "coordinator", full)
