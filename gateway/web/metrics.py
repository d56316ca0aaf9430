"""``GET /metrics``: the counters of every process of this gateway, and what waits, read from the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response

from gateway.clock import utcnow
from gateway.context import Context
from gateway.metrics import CONTENT_TYPE, Gauge, exposition
from gateway.models import Deadline, Inbound, Outbox
from gateway.web.state import context_of


def waiting(context: Context) -> list[Gauge]:
    """A few counts: inbound and deadlines on indexed columns; the outbox's status is not indexed, a table
    that sending keeps moving (most rows are sent)."""
    now = utcnow()
    with context.sessions() as session:
        inbound, inbound_since = session.execute(select(func.count(Inbound.id), func.min(Inbound.received_at))
                                                 .where(Inbound.status == "pending")).one()
        outbox = {status: (count, since) for status, count, since in session.execute(
            select(Outbox.status, func.count(Outbox.id), func.min(Outbox.created_at))
            .where(Outbox.status.in_(("pending", "failed"))).group_by(Outbox.status))}
        due = session.scalar(select(func.count(Deadline.id)).where(Deadline.state == "pending",
                                                                   Deadline.due_at <= now))
    pending, pending_since = outbox.get("pending", (0, None))

    def age(since: datetime | None) -> float:
        return max(0.0, (now - since).total_seconds()) if since is not None else 0.0

    return [
        Gauge("gateway_queue_depth", "Work waiting, by queue: stored messages not applied yet (inbound), "
              "mails not sent yet (outbox).", {"inbound": inbound, "outbox": pending}, "queue"),
        Gauge("gateway_queue_oldest_seconds", "Age of the oldest work waiting, by queue (0 when nothing waits).",
              {"inbound": age(inbound_since), "outbox": age(pending_since)}, "queue"),
        Gauge("gateway_outbox_pending", "Mails written and not sent yet.", pending),
        Gauge("gateway_outbox_failed", "Mails given up on: refused by the relay, or out of attempts.",
              outbox.get("failed", (0, None))[0]),
        Gauge("gateway_deadlines_due", "Deadlines due and not done yet (the sweep does them).", due or 0),
    ]


def metrics(request: Request) -> Response:
    return Response(exposition(waiting(context_of(request))), media_type=CONTENT_TYPE)
