"""Several hosts on one PostgreSQL and one Redis (CONTRACT §11): two SMTP nodes, three processors;
each conversation applied in the order it was sent, whichever node took each mail, and nothing lost
or applied twice when a processor and an SMTP node are killed mid-stream."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import GATEWAY, answers, children, free_ports, mail, write_home
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CUSTOMERS = 50
REPLIES = 3


class Host:
    """One ``gateway serve --role ROLE`` with a data folder of its own."""

    def __init__(self, config: Path, role: str, name: str) -> None:
        self.config, self.role, self.name = config, role, name
        self.data = config.parent / name
        self.smtp_port, self.http_port = free_ports(2)
        self.log = config.parent / f"{name}.log"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Host:
        with self.log.open("a") as handle:
            self.process = subprocess.Popen(
                [*GATEWAY, "serve", "--role", self.role, "--data", str(self.data), "--smtp-port", str(self.smtp_port),
                 "--http-port", str(self.http_port)],
                cwd=self.config.parent, env={**os.environ, "GATEWAY_CONFIG": str(self.config)},
                stdout=handle, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while f"gateway ({self.role}):" not in self.log.read_text().rsplit("\n\n", 1)[-1] or (
                self.role == "smtp" and not answers(self.smtp_port)):
            assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(timeout=60) == 0, self.log.read_text()[-3000:]
        self.process = None

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None
        with self.log.open("a") as handle:
            handle.write("\n\n")  # what ``start`` waits for is looked for after this


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[tuple[list[Host], list[Host], str]]:
    config = write_home(tmp_path / "home", database_url=postgres_url, broker_url=redis_url)
    smtp = [Host(config, "smtp", f"mx{n}") for n in (1, 2)]
    processors = [Host(config, "process", f"p{n}") for n in (1, 2, 3)]
    try:
        for host in [*processors, *smtp]:
            host.start()
        yield smtp, processors, postgres_url
        for host in [*smtp, *processors]:
            host.stop()
    finally:
        for host in [*smtp, *processors]:
            if host.process is not None:
                host.process.kill()


def _conversation(customer: int, to: list[Host], sent: list[str], stop: threading.Event | None = None) -> None:
    """An opening mail, then replies that name it, each sent once the one before got its 250, to the
    SMTP nodes in turn; every Message-ID that got a 250 goes into ``sent``."""
    sender = f"c{customer}@client.example"
    opening = f"<open-{customer}@client.example>"
    ids = [opening, *(f"<reply-{customer}-{n}@client.example>" for n in range(1, REPLIES + 1))]
    for n, message_id in enumerate(ids):
        if stop is not None and stop.is_set():
            return
        headers = {"message_id": message_id}
        if n:
            headers |= {"in_reply_to": ids[n - 1], "references": " ".join(ids[:n])}
        message = mail(sender, "support@shop.example", f"Commande {customer}" if not n else f"Re: Commande {customer}",
                       f"Message {n} de {customer}", **headers)
        try:
            with smtplib.SMTP("127.0.0.1", to[n % len(to)].smtp_port, timeout=30) as client:
                client.send_message(message)
        except (smtplib.SMTPException, OSError):
            if stop is None:
                raise
            return  # the node was killed under it: the mail got no 250
        sent.append(message_id)


def _wait_applied(database_url: str, count: int, timeout: float = 180) -> None:
    engine = create_engine(database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                pending = connection.execute(text("SELECT count(*) FROM inbound WHERE status = 'pending'")).scalar_one()
                stored = connection.execute(text("SELECT count(*) FROM inbound")).scalar_one()
            if pending == 0 and stored >= count:
                return
            time.sleep(0.2)
        raise AssertionError(f"{pending} of {stored} stored messages still pending, {count} sent")
    finally:
        engine.dispose()


def _threads(database_url: str) -> dict[str, list[str]]:
    """Each customer's requests, and the texts of each request's comments in the order applied."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT c.author_email, c.request_id, c.text FROM comments c ORDER BY c.request_id, c.id")).all()
    finally:
        engine.dispose()
    threads: dict[str, list[str]] = {}
    requests: dict[str, set[int]] = {}
    for email, request_id, body in rows:
        requests.setdefault(email, set()).add(request_id)
        threads.setdefault(email, []).append(body.strip().splitlines()[0] if body.strip() else "")
    assert all(len(ids) == 1 for ids in requests.values()), {e: ids for e, ids in requests.items() if len(ids) > 1}
    return threads


def _in_order(threads: dict[str, list[str]], customer: int, replies: int) -> bool:
    """The opening mail, then its first ``replies`` replies, in the order sent, in one request."""
    return threads.get(f"c{customer}@client.example") == [f"Message {n} de {customer}" for n in range(replies + 1)]


def test_conversations_sent_to_two_smtp_nodes_are_applied_in_order_by_three_processors(
        cluster: tuple[list[Host], list[Host], str]) -> None:
    smtp, processors, database_url = cluster
    for host in processors:  # a host that takes no mail in has no listener to yield the CPU to
        assert host.process is not None
        assert {os.sched_getscheduler(pid) for pid in [host.process.pid, *children(host.process.pid)]} \
            == {os.SCHED_OTHER}
    sent: list[str] = []
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda customer: _conversation(customer, smtp, sent), range(CUSTOMERS)))
    assert len(sent) == CUSTOMERS * (REPLIES + 1)
    _wait_applied(database_url, len(sent))
    threads = _threads(database_url)
    assert len(threads) == CUSTOMERS, "each opening mail opened one request, and no reply another"
    assert [c for c in range(CUSTOMERS) if not _in_order(threads, c, REPLIES)] == []
    engine = create_engine(database_url)
    with engine.connect() as connection:
        by = dict(connection.execute(text("SELECT status, count(*) FROM inbound GROUP BY status")).all())
        conversations = connection.execute(text("SELECT count(DISTINCT conversation) FROM inbound")).scalar_one()
        in_files = connection.execute(text("SELECT count(*) FROM inbound WHERE raw IS NULL")).scalar_one()
    engine.dispose()
    assert by == {"processed": len(sent)} and conversations == CUSTOMERS
    assert in_files == 0, "the raw bytes live in the database, where every processor reaches them"


def test_a_processor_and_an_smtp_node_killed_mid_stream_lose_nothing_apply_nothing_twice_and_keep_order(
        cluster: tuple[list[Host], list[Host], str]) -> None:
    smtp, processors, database_url = cluster
    sent: list[str] = []
    stop = threading.Event()
    with ThreadPoolExecutor(10) as pool:
        streams = [pool.submit(_conversation, customer, smtp, sent, stop) for customer in range(CUSTOMERS)]
        while len(sent) < CUSTOMERS:  # halfway through
            time.sleep(0.01)
        processors[0].kill()
        smtp[1].kill()
        stop.set()  # the customers whose next mail found the node dead stop there
        for stream in streams:
            stream.result()
    smtp[1].start()  # its spool, taken in at its own restart
    _wait_applied(database_url, len(sent))
    engine = create_engine(database_url)
    with engine.connect() as connection:
        applied = connection.execute(text(
            "SELECT message_id FROM inbound WHERE status = 'processed' ORDER BY id")).scalars().all()
        duplicates = connection.execute(text("SELECT count(*) FROM inbound WHERE status = 'duplicate'")).scalar_one()
    engine.dispose()
    assert set(sent) <= set(applied), "every mail that got its 250 is applied"
    assert len(applied) == len(set(applied)) and duplicates == 0, "none twice"
    threads = _threads(database_url)
    for customer in [c for c in range(CUSTOMERS) if f"<open-{c}@client.example>" in applied]:
        replies = sum(message_id.startswith(f"<reply-{customer}-") for message_id in applied)
        assert _in_order(threads, customer, replies), threads.get(f"c{customer}@client.example")
