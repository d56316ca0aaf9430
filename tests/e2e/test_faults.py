"""Faults of the servers the gateway stands on: PostgreSQL and Redis restarted while mail streams in.

Every mail that got its 250 ends applied exactly once, with its acknowledgment sent once, and the
gateway goes on by itself: nobody runs ``replay`` or restarts it.
"""

from __future__ import annotations

import smtplib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Gateway, mail, need_server, write_home
from servers import POSTGRES_BIN, Postgres, Redis

STREAM = 60
FAST_SWEEP = "sweep_seconds = 1\nrequeue_seconds = 3"


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    if not (POSTGRES_BIN / "postgres").exists():
        need_server(-1, "PostgreSQL's binaries (Debian's postgresql package)")
    server = Postgres()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def redis() -> Iterator[Redis]:
    server = Redis()
    server.start()
    yield server
    server.remove()


def _stream(gw: Gateway, fault: Callable[[], None], after: int = 15) -> list[str]:
    """Send ``STREAM`` new requests one by one over SMTP, running ``fault`` once ``after`` are in;
    returns the subjects that got their 250."""
    accepted: list[str] = []

    def send() -> None:
        for number in range(STREAM):
            subject = f"Demande {number}"
            try:
                gw.send(mail(f"client{number}@client.example", "support@shop.example", subject, "Bonjour"))
            except (smtplib.SMTPException, OSError):
                continue  # a refusal is a clear answer: the sender's MTA tries again
            accepted.append(subject)
            time.sleep(0.02)

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 60
    while len(accepted) < after and time.monotonic() < deadline:
        time.sleep(0.01)
    fault()
    sender.join()
    assert len(accepted) >= STREAM - 5, f"only {len(accepted)} of {STREAM} accepted"
    return accepted


def _each_applied_and_acknowledged_once(gw: Gateway, accepted: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        subjects = Counter(r["subject"] for r in gw.requests())
        if set(accepted) <= set(subjects) and gw.count("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0:
            break
        time.sleep(0.5)
    subjects = Counter(r["subject"] for r in gw.requests())
    assert set(accepted) <= set(subjects), f"not applied: {sorted(set(accepted) - set(subjects))}\n" \
                                            + gw.log.read_text()[-4000:]
    assert max(subjects.values()) == 1, "a message applied twice"
    assert gw.count("SELECT count(*) FROM inbound WHERE status <> 'processed'") == 0
    acknowledgments = Counter(str(m["To"]) for m in gw.outbox() if str(m["Subject"]).startswith("[#"))
    customers = {f"client{s.split()[1]}@client.example" for s in accepted}
    assert customers <= set(acknowledgments) and max(acknowledgments.values()) == 1, acknowledgments


@pytest.mark.postgres
def test_postgresql_restarted_in_a_stream_of_mails(tmp_path: Path, postgres: Postgres) -> None:
    gw = Gateway(write_home(tmp_path / "home", database_url=postgres.url, extra=FAST_SWEEP),
                 database_url=postgres.url).start()
    try:
        def restart() -> None:
            postgres.stop()
            time.sleep(3)
            postgres.start()

        accepted = _stream(gw, restart)
        _each_applied_and_acknowledged_once(gw, accepted)
    finally:
        assert gw.stop() == 0


@pytest.mark.redis
def test_redis_restarted_in_a_stream_of_mails_loses_its_queue_and_nothing_else(tmp_path: Path, redis: Redis) -> None:
    gw = Gateway(write_home(tmp_path / "home", broker_url=redis.url, extra=FAST_SWEEP)).start()
    try:
        def restart() -> None:
            redis.stop()
            time.sleep(3)
            redis.start()

        accepted = _stream(gw, restart)
        _each_applied_and_acknowledged_once(gw, accepted)
    finally:
        assert gw.stop() == 0
