#!/usr/bin/env python3
"""Deadline sweep benchmark (issue 17): 100,000 pending deadlines, 1 % of them due.

Run by hand, not by pytest::

    .venv/bin/python bench/sweep.py                          # SQLite, in a temp dir
    .venv/bin/python bench/sweep.py --database postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/sweep.py --json

What it does, on a fresh database (a PostgreSQL URL is given a database of its own, dropped after):

1. Places ``--due`` orders through the domain (``create_order``: the order, its participants, its
   acceptance deadline 48 hours ahead), then writes the other pending deadlines, due in a year,
   in bulk, up to ``--deadlines`` in all, on one more order (an order has a few deadlines at a
   time: voiding them when it is cancelled touches its own, never the whole table's).
2. ``nothing due``: ``run_due`` while nothing is due, ``--repeat`` times; the median and the worst.
3. ``due``: the clock moves 49 hours (``gateway.clock``'s offset file), and one ``run_due`` does
   the due ones: each order cancelled, its two mails (customer, coordinator) written to the outbox.
   The bench checks that each was done once and that the outbox holds the mails.

Targets: a sweep with nothing due under 20 ms; 1,000 due handled, mails queued, under 5 s. They are
printed with pass/fail and do not change the exit status (non-zero only when a check fails).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text

from gateway.clock import use_offset_file, utcnow
from gateway.context import open_context
from gateway.deadlines import run_due
from gateway.helpdesk import upsert_person
from gateway.models import Deadline, Outbox
from gateway.orders.due import HANDLERS, read_ahead
from gateway.orders.placing import OrderDraft, create_order, validate_order
from gateway.settings import Mailbox, OrderTimes, Settings
from gateway.transaction import mailing

TARGET_IDLE_MS = 20.0
TARGET_DUE_SECONDS = 5.0


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _database(url: str) -> tuple[str, Any]:
    """A database of the bench's own on that server, and how to drop it after."""
    if not url:
        return "", lambda: None
    name = f"bench_sweep_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.rsplit("/", 1)[0] + "/" + name, drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deadlines", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    url, drop = _database(args.database)
    clock = home / "clock"
    settings = Settings(home=home, data_dir=home / "var", database_url=url, secret_key="b" * 40,
                        clock_file=clock, mailboxes=(Mailbox("orders@shop.example", "orders",
                                                             times=OrderTimes(acceptance_hours=48)),))
    try:
        context = open_context(settings)
        log(f"placing {args.due} orders ...")
        with mailing(context) as (session, mailer):
            upsert_person(session, "alice@shop.example", role="coordinator")
            for number in range(args.due + 1):  # the first one holds the deadlines due next year
                draft = validate_order(session, settings, {
                    "customer": {"email": f"c{number}@client.example"}, "subject": f"Commande {number}",
                    "payment_method": "transfer",
                    "items": [{"description": "Logo", "quantity": 1, "unit_price": "120.00"}]})
                assert isinstance(draft, OrderDraft), draft
                create_order(session, settings, mailer, draft)
        with context.sessions.begin() as session:
            session.execute(text("DELETE FROM outbox_bodies"))
            session.execute(text("DELETE FROM outbox"))
            first = session.scalar(select(func.min(Deadline.request_id)))
            session.execute(text("UPDATE deadlines SET state = 'void' WHERE request_id = :first"), {"first": first})
            later = utcnow() + timedelta(days=365)
            rows = [{"request_id": first, "kind": "delivery", "due_at": later + timedelta(seconds=i),
                     "state": "pending", "created_at": utcnow(), "outcome": ""}
                    for i in range(args.deadlines - args.due)]
            for start in range(0, len(rows), 10_000):
                session.execute(insert(Deadline), rows[start:start + 10_000])
        with context.engine.connect() as connection:  # as autovacuum (PostgreSQL) would have by now
            connection.execute(text("ANALYZE"))
            connection.commit()
        log(f"{args.deadlines} pending deadlines, {args.due} of them due in 48 hours")

        idle = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            assert run_due(context, HANDLERS).done == []
            idle.append((time.perf_counter() - began) * 1000)

        clock.write_text(str(49 * 3600))
        began = time.perf_counter()
        swept = run_due(context, HANDLERS, read_ahead=read_ahead)
        due_seconds = time.perf_counter() - began
        with context.sessions() as session:
            queued = session.scalar(select(func.count(Outbox.id))) or 0
            done = session.scalar(select(func.count(Deadline.id)).where(Deadline.state == "done")) or 0
        checks = {"each due one done once": len(swept.done) == args.due == done and not swept.failed,
                  "two mails queued each": queued == 2 * args.due}
        figures = {
            "database": context.engine.dialect.name, "deadlines": args.deadlines, "due": args.due,
            "idle_ms_median": round(statistics.median(idle), 2), "idle_ms_max": round(max(idle), 2),
            "due_seconds": round(due_seconds, 2), "mails_queued": queued,
            "pass_idle": statistics.median(idle) < TARGET_IDLE_MS, "pass_due": due_seconds < TARGET_DUE_SECONDS,
            "checks": checks,
        }
        context.engine.dispose()
    finally:
        use_offset_file(None)
        drop()
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{figures['database']}: {args.deadlines:,} pending, {args.due:,} due")
        print(f"  nothing due: median {figures['idle_ms_median']} ms, worst {figures['idle_ms_max']} ms "
              f"(target < {TARGET_IDLE_MS:g} ms: {'pass' if figures['pass_idle'] else 'FAIL'})")
        print(f"  {args.due:,} due: {figures['due_seconds']} s, {queued:,} mails queued "
              f"(target < {TARGET_DUE_SECONDS:g} s: {'pass' if figures['pass_due'] else 'FAIL'})")
        for name, held in checks.items():
            print(f"  check: {name}: {'ok' if held else 'FAILED'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
