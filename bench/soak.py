#!/usr/bin/env python3
"""Soak: mail at a steady rate for a long time on PostgreSQL, one SMTP node and two processors.

Run by hand, not by pytest (PostgreSQL and Redis as ``./dev test`` starts them)::

    .venv/bin/python bench/soak.py                       # 30 minutes at 100 mails/s
    .venv/bin/python bench/soak.py --minutes 10 --rate 50 --json

Conversations of 4 mails (``scale_out.conversation``: an opening mail, three replies naming it) are
offered at RATE mails/s, paced, over 16 threads. Every minute the resident memory of every gateway
process (each host and its children: listeners, processor) is summed. At the end: every mail that got
its 250 applied once (nothing lost, nothing twice), each conversation in one request, and the memory
of the last minute against minute 5 (target: within 10 %). A PostgreSQL running with autovacuum off
(the test machines' setting) gets an ANALYZE every minute, as autovacuum would: without statistics,
the planner scans tables that grow by 100 rows a second, and applying falls to a quarter.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scale_out import conversation, fresh_database, start, stop, tree, write_home
from sqlalchemy import create_engine, text


def rss_mb(pids: list[int]) -> float:
    """VmRSS of these processes and of all their descendants."""
    total = 0
    for pid in tree(pids):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return round(total / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100, help="mails/s offered (default 100)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    hosts: list[subprocess.Popen[bytes]] = []
    with fresh_database() as database_url, tempfile.TemporaryDirectory() as temp:
        try:
            config = write_home(Path(temp) / "home", database_url)
            hosts = [start(config, "process", "p1")[0], start(config, "process", "p2")[0]]
            smtp, port = start(config, "smtp", "mx1")
            hosts.append(smtp)
            customers = itertools.count()
            lock = threading.Lock()
            stop_at = time.monotonic() + args.minutes * 60
            interval = 4 / args.rate  # one conversation of 4 mails, every interval across the threads
            next_at = [time.monotonic()]
            opened: list[int] = []
            failures: list[str] = []

            def offer() -> None:
                while True:
                    with lock:
                        at = next_at[0] = max(next_at[0] + interval, time.monotonic() - 1)
                        customer = next(customers)
                    if at > stop_at:
                        return
                    time.sleep(max(0.0, at - time.monotonic()))
                    try:
                        conversation(customer, [port])
                        opened.append(customer)
                    except Exception as error:  # counted: the gateway must answer every mail
                        failures.append(f"{customer}: {error}")

            samples: list[float] = []
            with ThreadPoolExecutor(16) as pool:
                offering = [pool.submit(offer) for _ in range(16)]
                statistics = create_engine(database_url, isolation_level="AUTOCOMMIT")
                with statistics.connect() as connection:
                    analyze = connection.execute(text("SHOW autovacuum")).scalar_one() == "off"
                while time.monotonic() < stop_at:
                    time.sleep(min(60.0, max(0.0, stop_at - time.monotonic())))
                    samples.append(rss_mb([host.pid for host in hosts]))
                    if analyze:  # what autovacuum would do: the planner's statistics follow the tables' growth
                        with statistics.connect() as connection:
                            connection.execute(text("ANALYZE"))
                    print(f"minute {len(samples)}: {len(opened)} conversations, RSS {samples[-1]} MB",
                          file=sys.stderr, flush=True)
                for future in offering:
                    future.result()
            engine = create_engine(database_url)
            mails = len(opened) * 4
            with engine.connect() as connection:
                deadline = time.monotonic() + 600
                while connection.execute(text("SELECT count(*) FROM inbound WHERE status = 'pending'")).scalar_one():
                    if time.monotonic() > deadline:
                        break
                    connection.commit()
                    time.sleep(0.5)
                by = dict(connection.execute(text("SELECT status, count(*) FROM inbound GROUP BY status")).all())
                requests = connection.execute(text("SELECT count(*) FROM requests")).scalar_one()
                late = connection.execute(text(
                    "SELECT percentile_cont(0.99) WITHIN GROUP "
                    "(ORDER BY extract(epoch FROM processed_at - received_at)) FROM inbound")).scalar_one()
            engine.dispose()
        finally:
            stop(hosts)
    minute5 = samples[min(4, len(samples) - 1)]
    result = {"minutes": args.minutes, "rate": args.rate, "mails_sent": mails, "failures": len(failures),
              "inbound": by, "requests": requests, "conversations": len(opened),
              "p99_seconds": round(float(late or 0), 3),
              "rss_mb_by_minute": samples, "rss_growth_after_minute_5": round(samples[-1] / minute5 - 1, 3)}
    ok = (not failures and by == {"processed": mails} and requests == len(opened)
          and abs(result["rss_growth_after_minute_5"]) <= 0.10)
    print(json.dumps(result, indent=None if args.json else 2))
    print("nothing lost or twice, memory flat: " + ("PASS" if ok else "FAIL"), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
