"""``gateway replay``: stored raw messages through the pipeline again; the unique index keeps it idempotent."""

from __future__ import annotations

import json

from sqlalchemy import select

from gateway.context import open_context
from gateway.models import Inbound
from gateway.outbound.outbox import deliver_all
from gateway.pipeline.process import process_safely
from gateway.settings import ConfigError, Settings
from gateway.writer import writer


def replay(settings: Settings, number: int | None, *, failed: bool, as_json: bool = False) -> int:
    context = open_context(settings)
    with writer(context), context.sessions.begin() as session:
        if failed:
            rows = list(session.scalars(select(Inbound).where(Inbound.status == "failed").order_by(Inbound.id)))
        else:
            row = session.get(Inbound, number)
            if row is None:
                raise ConfigError(f"no stored message {number}: the number is in the log line of each message")
            rows = [row]
        for row in rows:
            if row.status == "failed":
                row.status = "pending"
        ids = [row.id for row in rows]
    results = []
    for inbound_id in ids:
        with writer(context):  # a running ``gateway serve`` and this command take turns
            outcome = process_safely(context, inbound_id)
        deliver_all(context, outcome.outbox_ids)
        results.append({"id": inbound_id, "status": outcome.status, "decision": outcome.decision})
    if as_json:
        print(json.dumps(results, ensure_ascii=False))
    else:
        for result in results:
            print(f"message {result['id']}: {result['status']}: {result['decision']}")
    return 0
