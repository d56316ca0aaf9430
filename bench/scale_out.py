#!/usr/bin/env python3
"""Scale-out benchmark: messages applied per second on PostgreSQL by 1 and 2 processor processes.

Run by hand, not by pytest (PostgreSQL on 127.0.0.1:5432 and Redis on 6379, as ``./dev test`` starts)::

    .venv/bin/python bench/scale_out.py                    # 1 and 2 processors, 1 SMTP node, then 2 SMTP nodes
    .venv/bin/python bench/scale_out.py --customers 500 --json

Each run, in a throwaway home and a fresh database: ``gateway serve --role smtp`` nodes (one, or two
sharing the mail) take in CUSTOMERS conversations of 4 mails (an opening mail, then three replies
naming it by In-Reply-To/References, each sent after the previous one's 250, one SMTP session each,
over 8 threads): **accepted/s** is the mails over the sending time. The ``--role process`` hosts,
started before and stopped (SIGSTOP) meanwhile, are then let go together and apply them:
**applied/s** is the messages over the time from the first one applied to the last
(``inbound.processed_at``), their notifications in the outbox included (written in the same
transaction), their sending by the same hosts beside it. The intake and the processors are timed
apart, so that each has the machine to itself. The CPU of the processor hosts (each with its
processor process) and of PostgreSQL over that time says where the ceiling is.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import create_engine, text

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GATEWAY = [sys.executable, "-m", "gateway"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def fresh_database() -> Iterator[str]:
    """A database of its own for one run, dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def stop(hosts: list[subprocess.Popen[bytes]]) -> None:
    """Let stopped hosts go on, then stop them all as a supervisor does (SIGTERM)."""
    for pid in tree([process.pid for process in hosts]):
        os.kill(pid, signal.SIGCONT)
    for process in hosts:
        process.send_signal(signal.SIGTERM)
    for process in hosts:
        process.wait(timeout=60)


def write_home(home: Path, database_url: str) -> Path:
    home.mkdir(parents=True)
    config = home / "gateway.toml"
    config.write_text(f"""[gateway]
domain = "shop.example"
secret_key = "{uuid.uuid4().hex}{uuid.uuid4().hex}"
database_url = "{database_url}"
broker_url = "redis://127.0.0.1:6379/0"
broker_namespace = "bench-{uuid.uuid4().hex[:8]}"

[[mailboxes]]
address = "support@shop.example"
kind = "helpdesk"
""")
    return config


def start(config: Path, role: str, name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = config.parent / f"{name}.log"
    process = subprocess.Popen([*GATEWAY, "serve", "--role", role, "--data", str(config.parent / name),
                                "--smtp-port", str(port), "--http-port", str(free_port())],
                               env={**os.environ, "GATEWAY_CONFIG": str(config)}, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while f"gateway ({role}):" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return process, port


def tree(pids: list[int]) -> list[int]:
    """These processes and all their descendants."""
    seen: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        try:
            todo += [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                     for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return seen


def cpu_seconds(pids: list[int], *, descendants: bool = True) -> float:
    """CPU time of these processes and (unless ``descendants`` is false) of all their descendants, alive."""
    total = 0
    for pid in tree(pids) if descendants else pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _named(p, "postgres")]


def _named(proc: Path, name: str) -> bool:
    try:
        return (proc / "comm").read_text().strip() == name
    except OSError:
        return False


def conversation(customer: int, ports: list[int]) -> None:
    ids = [f"<c{customer}-{n}@client.example>" for n in range(4)]
    for n, message_id in enumerate(ids):
        message = EmailMessage()
        message["From"] = f"customer{customer}@client.example"
        message["To"] = "support@shop.example"
        message["Subject"] = f"{'Re: ' if n else ''}Commande {customer}"
        message["Message-ID"] = message_id
        if n:
            message["In-Reply-To"] = ids[n - 1]
            message["References"] = " ".join(ids[:n])
        message.set_content(f"Bonjour,\n\nmessage {n} de la conversation {customer}.\n\nCordialement\n")
        with smtplib.SMTP("127.0.0.1", ports[(customer + n) % len(ports)], timeout=60) as client:
            client.send_message(message)


def run(customers: int, processors: int, smtp_nodes: int) -> dict[str, float]:
    hosts: list[subprocess.Popen[bytes]] = []
    with fresh_database() as database_url, tempfile.TemporaryDirectory() as temp:
        config = write_home(Path(temp) / "home", database_url)
        try:
            applying = []  # started first, and stopped: each starts applying when all are ready
            for n in range(processors):
                applying.append(start(config, "process", f"p{n}")[0])
                for pid in tree([applying[-1].pid]):
                    os.kill(pid, signal.SIGSTOP)
            hosts += applying
            ports = []
            for n in range(smtp_nodes):
                process, port = start(config, "smtp", f"mx{n}")
                hosts.append(process)
                ports.append(port)
            began = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda customer: conversation(customer, ports), range(customers)))
            sending = time.monotonic() - began
            processors_cpu = cpu_seconds([process.pid for process in applying])  # their start
            hosts_cpu = cpu_seconds([process.pid for process in applying], descendants=False)
            for pid in tree([process.pid for process in applying]):  # after the intake: each has the machine
                os.kill(pid, signal.SIGCONT)
            database_cpu = sum(cpu_seconds([pid]) for pid in postgres_pids())
            began = time.monotonic()
            engine = create_engine(database_url)
            mails = customers * 4
            deadline = time.monotonic() + 600
            with engine.connect() as connection:
                while connection.execute(text("SELECT count(*) FROM inbound WHERE status <> 'pending'")).scalar_one() \
                        < mails:
                    if time.monotonic() > deadline:
                        raise SystemExit("the processors did not finish in 10 minutes")
                    connection.commit()
                    time.sleep(0.1)
                wall = time.monotonic() - began
                processors_cpu = cpu_seconds([process.pid for process in applying]) - processors_cpu
                hosts_cpu = cpu_seconds([process.pid for process in applying], descendants=False) - hosts_cpu
                database_cpu = sum(cpu_seconds([pid]) for pid in postgres_pids()) - database_cpu
                first, last = connection.execute(text("SELECT min(processed_at), max(processed_at) FROM inbound")).one()
                requests = connection.execute(text("SELECT count(*) FROM requests")).scalar_one()
            engine.dispose()
            if requests != customers:
                raise SystemExit(f"{requests} requests for {customers} conversations: one was applied out of order")
            return {"processors": processors, "smtp_nodes": smtp_nodes, "mails": mails,
                    "accepted_per_s": round(mails / sending, 1),
                    "applied_per_s": round(mails / max((last - first).total_seconds(), 1e-3), 1),
                    "processors_cores": round(processors_cpu / wall, 2),
                    "of_which_hosts_cores": round(hosts_cpu / wall, 2),
                    "postgres_cores": round(database_cpu / wall, 2),
                    "processors_cpu_ms_per_mail": round(processors_cpu * 1000 / mails, 1)}
        finally:
            stop(hosts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=300, help="conversations of 4 mails (default 300)")
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    args = parser.parse_args()
    results = [run(args.customers, processors, smtp_nodes) for smtp_nodes in (1, 2) for processors in (1, 2)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'SMTP nodes':>10} {'processors':>10} {'mails':>6} {'accepted/s':>11} {'applied/s':>10} "
          f"{'processors, cores':>18} {'of which hosts':>15} {'PostgreSQL, cores':>18} {'ms CPU a mail':>14}")
    for result in results:
        print(f"{result['smtp_nodes']:>10} {result['processors']:>10} {result['mails']:>6} "
              f"{result['accepted_per_s']:>11} {result['applied_per_s']:>10} {result['processors_cores']:>18} "
              f"{result['of_which_hosts_cores']:>15} {result['postgres_cores']:>18} "
              f"{result['processors_cpu_ms_per_mail']:>14}")
    for smtp_nodes in (1, 2):
        one, two = (r["applied_per_s"] for r in results if r["smtp_nodes"] == smtp_nodes)
        print(f"{smtp_nodes} SMTP node(s): 2 processors apply {two / one:.2f}x what 1 does (target >= 1.6x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
