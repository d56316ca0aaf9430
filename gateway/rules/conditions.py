"""Conditions in a safe expression language (the ``rule-engine`` package; never ``eval``).

The facts a condition can name are listed in ``FACTS`` and documented in ``rules/README.md``.
"""

from __future__ import annotations

import logging
from typing import Any

import rule_engine

FACTS = {
    "event": "message, comment, status or assignment",
    "kind": "helpdesk or order",
    "mailbox": "the mailbox address",
    "subject": "the request's subject",
    "text": "the text of the comment the mail posted (empty when it posted none)",
    "sender": "the author's address",
    "sender_domain": "the part of the author's address after @",
    "role": "requester, coordinator, supplier, observer or unknown",
    "unverified": "true when the author wrote with someone else's reply address",
    "visibility": "public, private or note",
    "explicit_visibility": "true when the mail said #private or #public",
    "status": "the request's status",
    "previous_status": "before a status event",
    "labels": "the request's labels (a list)",
    "assignee": "the assignee's address, or null",
    "expected_response": "customer, coordinator, supplier or null",
    "sticky_private": "true after a private team comment, until #public",
    "has_supplier": "true when a supplier takes part in the request",
    "include_supplier": "the mailbox's include_supplier option",
    "mentioned_products": "SKUs of the products named in the subject or text (a list)",
    "product": "the SKU of the request's product, or null",
}

_CONTEXT = rule_engine.Context(default_value=None)
log = logging.getLogger("gateway.rules")


class ConditionError(Exception):
    """A condition that does not compile; the message says where."""


def compile_condition(source: str) -> rule_engine.Rule:
    try:
        return rule_engine.Rule(source or "true", context=_CONTEXT)
    except rule_engine.errors.EngineError as error:
        raise ConditionError(f"condition {source!r}: {error.message}") from error


def matches(condition: rule_engine.Rule, facts: dict[str, Any]) -> bool:
    """Whether the facts satisfy the condition; one that cannot be evaluated (a wrong type) does not match."""
    try:
        return bool(condition.matches(facts))
    except rule_engine.errors.EngineError as error:
        log.warning("condition %r could not be evaluated: %s", condition.text, error.message)
        return False
