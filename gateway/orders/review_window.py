"""While a delivered order waits for its customer (CONTRACT §10), the conversation pauses.

The customer decides on the order page, not by mail: a reply from them is kept, private, and
answered with the two choices and the link. The team's public replies are not sent: the comment
is kept private, and its author told why (a seller may not argue the customer into a review).
Commands still apply, so ``#revision`` and ``#cancellation`` answers work as ever.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.helpdesk import Author
from gateway.models import Request
from gateway.notify import Mailer
from gateway.orders.card import ensure_order
from gateway.orders.mail import tell_customer
from gateway.settings import Settings

PAUSED = "delivered"


def comment_visibility(session: Session, settings: Settings, mailer: Mailer, request: Request, author: Author,
                       visibility: str, *, secretless: bool = False) -> str:
    """The visibility a new comment keeps on an order waiting for its customer's decision; the mail that
    says why, to the customer or to the team member who wrote (``secretless``: see ``Mailer.send``)."""
    if request.kind != "order" or request.status != PAUSED or visibility != "public":
        return visibility
    order = ensure_order(session, request, settings)
    if author.role == "requester":
        tell_customer(mailer, order, "review_window", {}, secretless=secretless)
        return "private"
    if author.participant is not None and not author.unverified:
        mailer.send(request, author.participant, "reply_held", "coordinator", {"number": order.number})
        return "private"
    return visibility
