#!/usr/bin/env python3
"""Quote page benchmark: ``GET /quote/{token}`` and the accept POST under 50 concurrent clients.

Run by hand, not by pytest::

    .venv/bin/python bench/quote_page.py                  # table
    .venv/bin/python bench/quote_page.py --json           # the same figures as JSON on stdout

What it does, in a throwaway home under a temp dir (SQLite, in-process worker, outgoing
mail to the outbox Maildir, one coordinator):

1. Starts ``gateway serve`` on free ports, then creates ``--quotes`` open quotes through the
   domain (one order and one quote per customer, in this process, on the same database).
2. ``GET max``: ``--requests`` GETs of random quote links, as fast as ``--clients`` clients go.
3. ``GET paced``: GETs offered at ``--rate`` requests/s for ``--seconds`` seconds.
4. ``accept max`` and ``accept paced``: the same for ``POST /quote/{token}/accept``, each
   on quotes never decided before (so each POST really decides: one transaction, the
   coordinator's mail written to the outbox and sent by the worker).

Clients are asyncio tasks on loopback speaking plain HTTP/1.1, each on its own kept-alive
connection (a Python client library such as httpx costs more CPU per request than the server
under test, and it runs on the same two cores).
Latency of a max run: from the request's start to its answer. Latency of a paced run: from
the request's scheduled slot to its answer, so a server that falls behind pays for it
(no coordinated omission). Every answer must be 200 (GET) or 303 (POST); the bench checks
afterwards that each accepted quote is ``accepted`` in the database.

Exit status: 0 when every answer was the expected one and serve exits 0 on SIGTERM; the
target (p99 < 100 ms at 200 requests/s) is printed with pass/fail but does not change it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

TARGET_P99_MS = 100.0
TARGET_RATE = 200.0


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_home(home: Path, http_port: int) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "gateway.toml"
    config.write_text(f"""
[gateway]
domain = "shop.example"
secret_key = "bench-{os.urandom(16).hex()}"
data_dir = "var"
site_name = "Boutique Bench"
base_url = "http://127.0.0.1:{http_port}"
mails_per_hour = 100000

[[mailboxes]]
address = "orders@shop.example"
kind = "orders"
""")
    return config


def start_serve(config: Path, smtp_port: int, http_port: int) -> subprocess.Popen[bytes]:
    log_path = config.parent / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--smtp-port", str(smtp_port), "--http-port", str(http_port)],
        cwd=config.parent, env={**os.environ, "GATEWAY_CONFIG": str(config), "PYTHONUNBUFFERED": "1"},
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while b"SMTP on" not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("gateway serve did not start:\n" + log_path.read_text())
        time.sleep(0.05)
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = 90) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return -9


def make_quotes(config: Path, count: int) -> list[str]:
    """``count`` open quotes, one order each, created through the domain; their link tokens."""
    from gateway.context import open_context
    from gateway.helpdesk import open_request, upsert_person
    from gateway.orders.card import ensure_order
    from gateway.orders.quotes import create_quote
    from gateway.settings import load
    from gateway.tokens import mint_quote_token
    from gateway.transaction import mailing

    context = open_context(load(str(config)))
    settings = context.settings
    mailbox = settings.mailboxes[0]
    tokens: list[str] = []
    with context.sessions.begin() as session:
        upsert_person(session, "alice@shop.example", role="coordinator", locale="en")
    for start in range(0, count, 200):
        with mailing(context) as (session, mailer):
            for i in range(start, min(count, start + 200)):
                customer = upsert_person(session, f"customer{i}@client.example", name=f"Client {i}",
                                         locale="fr" if i % 2 else "en")
                request, _ = open_request(session, mailbox, f"Site vitrine {i}", customer, f"<bench{i}@client>")
                order = ensure_order(session, request, settings)
                quote = create_quote(session, settings, mailer, order, author="alice@shop.example",
                                     amount=Decimal(300 + i % 700))
                session.flush()
                tokens.append(mint_quote_token(settings.secret_key, quote.id, quote.version))
    context.engine.dispose()
    return tokens


@dataclass
class Run:
    label: str
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0
    followed_up_s: float | None = None  # POST runs: until every decision's consequences and mails are done

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    def summary(self) -> dict[str, Any]:
        return {"requests": len(self.latencies_ms), "elapsed_s": round(self.elapsed, 2),
                "rps": round(len(self.latencies_ms) / self.elapsed, 1) if self.elapsed else None,
                "p50_ms": round(self.percentile(50), 1), "p99_ms": round(self.percentile(99), 1),
                "max_ms": round(max(self.latencies_ms, default=float("nan")), 1),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "errors": self.errors,
                "followed_up_per_s": (round(len(self.latencies_ms) / self.followed_up_s, 1)
                                      if self.followed_up_s else None)}


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str) -> int:
    """One HTTP/1.1 request on a kept-alive connection; the answer's status (its body is read and dropped)."""
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def drive(port: int, label: str, method: str, paths: list[str], clients: int, rate: float | None) -> Run:
    """Send one request per path with ``clients`` concurrent clients, as fast as they go or at ``rate``/s.

    The clients speak HTTP/1.1 over asyncio streams, one kept-alive connection each: a client
    library such as httpx costs more CPU per request than the server under test, on the same cores.
    """
    run = Run(label)
    queue: asyncio.Queue[tuple[float | None, str] | None] = asyncio.Queue()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            slot, path = item
            started = time.perf_counter()
            try:
                status = await _exchange(reader, writer, method, path)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                run.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            run.statuses[status] = run.statuses.get(status, 0) + 1
            run.latencies_ms.append((time.perf_counter() - (slot if slot is not None else started)) * 1000)
        writer.close()

    workers = [asyncio.create_task(client()) for _ in range(clients)]
    began = time.perf_counter()
    for index, path in enumerate(paths):
        if rate is None:
            queue.put_nowait((None, path))
            continue
        slot = began + index / rate
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((slot, path))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    run.elapsed = time.perf_counter() - began
    return run


def wait_followed_up(database: Path, began: float, stall: float = 120) -> float:
    """Seconds from ``began`` until every decision is followed up and its mails are sent."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        last, since = -1, time.perf_counter()
        while True:
            waiting = db.execute("SELECT (SELECT count(*) FROM quotes WHERE status IN ('accepted', 'declined') "
                                 "AND followed_up_at IS NULL) + (SELECT count(*) FROM outbox "
                                 "WHERE status = 'pending' AND template = 'quote_decided.coordinator')"
                                 ).fetchone()[0]
            if waiting == 0:
                return time.perf_counter() - began
            if waiting != last:
                last, since = waiting, time.perf_counter()
            elif time.perf_counter() - since > stall:
                raise SystemExit(f"{waiting} decisions or mails still waiting after {stall} s without progress")
            time.sleep(0.05)


def verdict(run: dict[str, Any]) -> str:
    ok = run["p99_ms"] < TARGET_P99_MS and run["rps"] >= TARGET_RATE * 0.95
    return "pass" if ok else "FAIL"


def report(results: dict[str, Any]) -> str:
    rows = ["| run | requests | requests/s | p50 ms | p99 ms | max ms | answers | followed up/s "
            "| target p99 < 100 ms at 200/s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    for label, run in results["runs"].items():
        answers = ", ".join(f"{status}: {count}" for status, count in run["statuses"].items())
        if run["errors"]:
            answers += f", errors: {run['errors']}"
        target = ""
        if "paced" in label:
            target = verdict(run) if results["target"]["rate"] >= TARGET_RATE else "(offered below 200/s)"
        followed = run["followed_up_per_s"] or ""
        rows.append(f"| {label} | {run['requests']} | {run['rps']} | {run['p50_ms']} | {run['p99_ms']} | "
                    f"{run['max_ms']} | {answers} | {followed} | {target} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--requests", type=int, default=3000, help="requests of each max run (default 3000)")
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="offered requests/s of the paced runs")
    parser.add_argument("--seconds", type=float, default=10, help="length of each paced run (default 10)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp home (log, database, outbox)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gw-quote-bench-"))
    http_port, smtp_port = free_port(), free_port()
    config = write_home(root / "home", http_port)
    paced_count = int(args.rate * args.seconds)
    quotes_needed = args.requests + paced_count
    process = start_serve(config, smtp_port, http_port)
    failures: list[str] = []
    try:
        started = time.perf_counter()
        tokens = make_quotes(config, quotes_needed)
        log(f"{len(tokens)} quotes created in {time.perf_counter() - started:.1f} s")
        rng = random.Random(7)
        pages = [f"/quote/{rng.choice(tokens)}" for _ in range(args.requests + paced_count)]
        asyncio.run(drive(http_port, "warm-up", "GET", pages[:300], args.clients, None))
        to_accept = [f"/quote/{token}/accept" for token in tokens]
        database = root / "home" / "var" / "gateway.db"
        runs = [
            asyncio.run(drive(http_port, "GET max", "GET", pages[:args.requests], args.clients, None)),
            asyncio.run(drive(http_port, f"GET paced {args.rate:g}/s", "GET", pages[args.requests:], args.clients,
                             args.rate)),
        ]
        for label, paths, rate in (("accept max", to_accept[:args.requests], None),
                                   (f"accept paced {args.rate:g}/s", to_accept[args.requests:], args.rate)):
            began = time.perf_counter()
            runs.append(asyncio.run(drive(http_port, label, "POST", paths, args.clients, rate)))
            runs[-1].followed_up_s = wait_followed_up(database, began)
        for run, expected in zip(runs, (200, 200, 303, 303), strict=True):
            if run.errors or set(run.statuses) != {expected}:
                failures.append(f"{run.label}: answers {run.statuses}, {run.errors} errors (want only {expected})")
        with sqlite3.connect(database) as db:
            accepted = db.execute("SELECT count(*) FROM quotes WHERE status = 'accepted'").fetchone()[0]
        if accepted != len(to_accept):
            failures.append(f"{accepted} quotes accepted in the database, {len(to_accept)} accept POSTs")
    finally:
        code = stop(process)
        if code != 0:
            failures.append(f"serve exited {code} on SIGTERM (want 0)")
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    results = {"clients": args.clients, "target": {"p99_ms": TARGET_P99_MS, "rate": args.rate},
               "runs": {run.label: run.summary() for run in runs}, "failures": failures}
    print(json.dumps(results, indent=2) if args.json else report(results))
    for failure in failures:
        log("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
