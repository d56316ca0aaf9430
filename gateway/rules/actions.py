"""The verbs a rule can use. Each changes state inside the transaction and says what it did.

``check_action`` validates an argument when the rule file is read, so a typo is refused at
start rather than discovered on the first mail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.change import RequestChange
from gateway.helpdesk import find_person, join
from gateway.models import Label, Product
from gateway.notify import tell_team

STATUSES = ("new", "in-progress", "resolved", "pending", "confirmed", "declined", "shipped", "completed",
            "cancelled")
AUDIENCES = ("coordinators", "customer")


class ActionError(Exception):
    """An action argument that cannot work."""


def _assign(context: RequestChange, target: str) -> str:
    if target == "all":
        context.request.assignee = None
        return "assigned to everyone"
    person = find_person(context.session, target)
    if person is None or person.role != "coordinator":
        return f"not assigned: {target} is not a coordinator"
    context.request.assignee = person
    return f"assigned to {target}"


def _label(context: RequestChange, name: str) -> str:
    if name not in {label.name for label in context.request.labels}:
        context.request.labels.append(Label(name=name))
    return f"labelled {name}"


def _unlabel(context: RequestChange, name: str) -> str:
    context.request.labels[:] = [label for label in context.request.labels if label.name != name]
    return f"unlabelled {name}"


def _status(context: RequestChange, status: str) -> str:
    context.request.status = status
    return f"status {status}"


def _expect(context: RequestChange, who: str) -> str:
    context.request.expected_response = None if who == "none" else who
    return f"expects {who}"


def _visibility(context: RequestChange, visibility: str) -> str:
    comment = context.comment
    if comment is None or comment.visibility == "note":
        return "no comment to change"
    if comment.unverified_sender and visibility == "public":
        return "an unverified sender's comment stays private"
    comment.visibility = visibility
    return f"comment {visibility}"


def _add_observer(context: RequestChange, email: str) -> str:
    person = find_person(context.session, email)
    join(context.session, context.request, email, role="observer", person=person, mail_only=person is None)
    return f"observer {email}"


def mentioned_products(session: Session, text: str) -> list[Product]:
    """Products whose SKU or name appears in the text (whole words, any case)."""
    found = []
    for product in session.scalars(select(Product).order_by(Product.id)):
        needles = "|".join(re.escape(n) for n in (product.sku, product.name) if n)
        if needles and re.search(rf"(?<!\w)(?:{needles})(?!\w)", text, re.I):
            found.append(product)
    return found


def _include_supplier(context: RequestChange, _enabled: bool) -> str:
    request = context.request
    text = f"{request.subject}\n{context.comment.text if context.comment else ''}"
    added = []
    for product in mentioned_products(context.session, text):
        if request.product is None:
            request.product = product
        if product.supplier is not None:
            join(context.session, request, product.supplier.email, role="supplier", person=product.supplier)
            added.append(product.supplier.email)
    return f"supplier {', '.join(added)} included" if added else "no product with a supplier named"


def _notify(context: RequestChange, target: dict[str, str]) -> str:
    template, to = target["template"], target["to"]
    facts: dict[str, Any] = {"comment": context.comment, "expected": False, "defects": []}
    if to == "coordinators":
        tell_team(context.mailer, context.request, template, facts)
    elif to == "customer":
        for participant in context.request.participants:
            if participant.role == "requester" and participant.active:
                context.mailer.send(context.request, participant, template, "customer", facts)
    else:
        person = find_person(context.session, to)
        participant = join(context.session, context.request, to, role="observer", person=person,
                           mail_only=person is None)
        context.mailer.send(context.request, participant, template, "coordinator", facts)
    return f"notified {to} with {template}"


def _stop(context: RequestChange, _enabled: bool) -> str:
    context.stopped = True
    return "stop"


ACTIONS: dict[str, Callable[[RequestChange, Any], str]] = {
    "assign": _assign,
    "label": _label,
    "unlabel": _unlabel,
    "status": _status,
    "expect": _expect,
    "visibility": _visibility,
    "add_observer": _add_observer,
    "include_supplier": _include_supplier,
    "notify": _notify,
    "stop": _stop,
}


def check_action(verb: str, argument: Any) -> None:
    """Refuse, when the file is read, an argument the action could not use."""
    def need(condition: bool, text: str) -> None:
        if not condition:
            raise ActionError(f"{verb} {text}, not {argument!r}")

    if verb in ("assign", "add_observer"):
        need(isinstance(argument, str) and ("@" in argument or (verb == "assign" and argument == "all")),
             "takes an email address" + (" or \"all\"" if verb == "assign" else ""))
    elif verb in ("label", "unlabel"):
        need(isinstance(argument, str) and 0 < len(argument) <= 100, "takes a label name")
    elif verb == "status":
        need(argument in STATUSES, f"takes one of {', '.join(STATUSES)}")
    elif verb == "expect":
        need(argument in ("customer", "coordinator", "supplier", "none"),
             "takes customer, coordinator, supplier or none")
    elif verb == "visibility":
        need(argument in ("public", "private"), "takes public or private")
    elif verb in ("include_supplier", "stop"):
        need(argument is True, "takes true")
    elif verb == "notify":
        need(isinstance(argument, dict) and set(argument) == {"template", "to"}
             and (argument.get("to") in AUDIENCES or "@" in str(argument.get("to"))),
             "takes { template = \"NAME\", to = \"coordinators\" | \"customer\" | an address }")
