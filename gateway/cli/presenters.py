"""Requests as plain data (CONTRACT §7), for ``gateway requests`` and anything else that shows them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, text
from sqlalchemy.orm import Session, selectinload

from gateway.clock import iso_utc
from gateway.models import Comment, Inbound, Label, Participant, Request, RuleMatch
from gateway.orders.summaries import order_detail


def request_summary(request: Request) -> dict[str, Any]:
    return {
        "number": request.id,
        "kind": request.kind,
        "mailbox": request.mailbox,
        "status": request.status,
        "subject": request.subject,
        "assignee": request.assignee.email if request.assignee else None,
        "requester": next((p.email for p in request.participants if p.role == "requester"), None),
        "unread": request.unread,
        "expected_response": request.expected_response,
        "created_at": iso_utc(request.created_at),
        "updated_at": iso_utc(request.updated_at),
    }


def _comment(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "author": comment.author_email,
        "role": comment.author_role,
        "visibility": "private" if comment.visibility == "note" else comment.visibility,
        "text": comment.text,
        "source": comment.source,
        "unverified_sender": comment.unverified_sender,
        "degraded": comment.degraded,
        "created_at": iso_utc(comment.created_at),
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size,
                         "sha256": a.sha256} for a in comment.attachments],
    }


def request_detail(session: Session, request: Request) -> dict[str, Any]:
    messages = session.scalars(select(Inbound).where(Inbound.request_id == request.id).order_by(Inbound.id)).all()
    rules = session.scalars(select(RuleMatch).where(RuleMatch.request_id == request.id).order_by(RuleMatch.id)).all()
    detail = {
        **request_summary(request),
        "labels": [label.name for label in request.labels],
        "product": request.product.sku if request.product else None,
        "delivery": request.delivery_ref,
        "participants": [{"email": p.email, "name": p.name, "role": p.role, "mail_only": p.mail_only,
                          "active": p.active} for p in request.participants],
        "comments": [_comment(c) for c in request.comments if c.visibility != "note"],
        "notes": [_comment(c) for c in request.comments if c.visibility == "note"],
        "events": [{"kind": e.kind, "detail": e.detail, "created_at": iso_utc(e.created_at)} for e in request.events],
        "rules": [{"message": r.inbound_id, "rule": r.rule, "event": r.event, "why": r.why, "did": r.did}
                  for r in rules],
        "messages": [{"id": m.id, "message_id": m.message_id, "status": m.status, "decision": m.decision}
                     for m in messages],
    }
    detail.update(order_detail(session, request) or {})
    return detail


def _comment_matches(session: Session, words: str) -> ColumnElement[bool]:
    """A comment holding every word, by the full-text index of migration 0006 (accents and case folded
    on SQLite; PostgreSQL's ``simple`` configuration)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_tsvector("simple", Comment.text).op("@@")(func.plainto_tsquery("simple", words))
    quoted = " ".join('"' + word.replace('"', '""') + '"' for word in words.split())
    return Comment.id.in_(text("SELECT rowid FROM comments_search WHERE comments_search MATCH :words")
                          .bindparams(words=quoted))


def load_requests(session: Session, kind: str | None = None, status: str | None = None, *,
                  customer: str | None = None, label: str | None = None, search: str | None = None,
                  unread: bool = False) -> list[Request]:
    """The inbox, newest first; ``customer``: their requests; ``search``: the words in the subject or a
    comment, the customer's name or address, or the request's number (``123`` or ``#123``), any case."""
    query = (select(Request).options(selectinload(Request.assignee), selectinload(Request.participants))
             .order_by(Request.id.desc()))
    if kind:
        query = query.where(Request.kind == kind)
    if status:
        query = query.where(Request.status == status)
    if customer:
        query = query.where(Request.participants.any(
            (Participant.email == customer.lower()) & (Participant.role == "requester")))
    if label:
        query = query.where(Request.labels.any(Label.name == label))
    if unread:
        query = query.where(Request.unread.is_(True))
    if search and search.strip():
        words = search.strip()
        number = words.lstrip("#")
        requester = (Participant.role == "requester") & (Participant.name.ilike(f"%{words}%")
                                                         | Participant.email.ilike(f"%{words}%"))
        matches = [Request.subject.ilike(f"%{words}%"), Request.comments.any(_comment_matches(session, words)),
                   Request.participants.any(requester)]
        if number.isdigit():
            matches.append(Request.id == int(number))
        query = query.where(or_(*matches))
    return list(session.scalars(query))


