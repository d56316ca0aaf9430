"""Running the rule table for one event on one request, Mailman-chain style.

Rules run in table order; each one whose condition holds applies its actions, and a
``stop`` ends the chain. Every match is recorded with its condition (the why) and what
its actions did, so ``gateway requests show`` can explain each decision.
"""

from __future__ import annotations

from typing import Any

from gateway.appends import append
from gateway.change import RequestChange
from gateway.clock import utcnow
from gateway.models import RuleMatch
from gateway.rules.actions import ACTIONS, mentioned_products
from gateway.rules.conditions import matches
from gateway.rules.loader import load_rules


def facts(context: RequestChange, event: str, *, explicit_visibility: bool = False,
          previous_status: str | None = None) -> dict[str, Any]:
    """What a condition can look at: the table of ``rules/README.md``, which a test holds to these names."""
    request, comment, author = context.request, context.comment, context.author
    text = comment.text if comment else ""
    mailbox = context.settings.mailbox_for(request.mailbox)
    include_supplier = bool(mailbox and mailbox.include_supplier)
    sender = author.email if author else ""
    return {
        "event": event,
        "kind": request.kind,
        "mailbox": request.mailbox,
        "subject": request.subject,
        "text": text,
        "sender": sender,
        "sender_domain": sender.rpartition("@")[2],
        "role": author.role if author else None,
        "unverified": bool(author and author.unverified),
        "customer_side": bool(author and author.customer_side),
        "visibility": comment.visibility if comment else None,
        "explicit_visibility": explicit_visibility,
        "status": request.status,
        "previous_status": previous_status,
        "labels": [label.name for label in request.labels],
        "assignee": request.assignee.email if request.assignee else None,
        "expected_response": request.expected_response,
        "sticky_private": request.sticky_private,
        "has_supplier": any(p.role == "supplier" and p.active for p in request.participants),
        "include_supplier": include_supplier,
        "mentioned_products": [p.sku for p in mentioned_products(context.session, f"{request.subject}\n{text}")]
        if include_supplier and event == "message" else [],
        "product": request.product.sku if request.product else None,
    }


def run_rules(context: RequestChange, event: str, *, inbound_id: int | None = None, **extra: Any) -> None:
    """Apply the matching rules of ``event``, in order; each match is recorded (``RuleMatch``)."""
    current = facts(context, event, **extra)
    for rule in load_rules(context.settings.home):
        if rule.event != event or not matches(rule.condition, current):
            continue
        did = [ACTIONS[verb](context, argument) for verb, argument in rule.actions]
        append(context.session, RuleMatch, context.request, inbound_id=inbound_id, rule=rule.name, event=event,
               why=rule.source, did="; ".join(did) or "nothing", created_at=utcnow())
        if rule.stop or context.stopped:
            break
        current = facts(context, event, **extra)
