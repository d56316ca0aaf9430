"""The SMTP listener process and the admission of what it keeps, in this process's context."""

from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.context import Context, open_context
from gateway.intake import listener
from gateway.intake.listener import Intake
from gateway.intake.spool import incoming_folder
from gateway.models import Inbound
from gateway.service.broker import configure
from gateway.service.serve import bind_web
from gateway.settings import ConfigError, Mailbox, Settings

MAIL = b"From: a@client.example\r\nTo: support@shop.example\r\nSubject: x\r\nMessage-ID: <l1@c>\r\n\r\nBonjour\r\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Context]:
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", smtp_port=free_port(),
                        mailboxes=(Mailbox("support@shop.example"),))
    context = open_context(settings)
    configure(settings)  # admitted messages are enqueued on a stub broker nobody runs
    yield context
    context.engine.dispose()


def rows(context: Context) -> list[Inbound]:
    with context.sessions() as session:
        return list(session.scalars(select(Inbound)))


def test_the_listener_answers_250_once_the_file_is_kept_and_serve_admits_it(context: Context) -> None:
    lost = threading.Event()
    smtp = Intake(context, on_lost=lost.set)
    try:
        with smtplib.SMTP("127.0.0.1", context.settings.smtp_port, timeout=10) as client:
            refused = client.sendmail("a@client.example", ["support@shop.example"], MAIL)
            assert refused == {}
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("a@client.example", ["someone@elsewhere.example"], MAIL)
        policy = os.sched_getscheduler(smtp.admitter.native_id or 0)  # it has been running since
    finally:
        smtp.stop()
    [row] = rows(context)
    assert (row.source, row.envelope_from, row.size) == ("smtp", "a@client.example", len(MAIL))
    assert not any(one.process.is_alive() for one in smtp.listeners)
    assert not list(incoming_folder(context.settings.data_dir).iterdir())
    assert not lost.is_set() and not smtp.lost, "asked to stop: not lost"
    assert policy == os.SCHED_IDLE, "the admitter gives way to the listeners"


def test_a_listener_that_ends_by_itself_is_reported_lost(context: Context) -> None:
    lost = threading.Event()
    smtp = Intake(context, on_lost=lost.set)
    smtp.listeners[-1].process.kill()
    assert lost.wait(10) and smtp.lost
    smtp.stop()


def test_messages_that_cannot_be_admitted_are_kept_and_admitted_a_little_later(
        context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    failures = [RuntimeError("the database is unavailable")]
    real = listener.admit

    def admit_after_a_failure(*args: Any, **kwargs: Any) -> list[int]:
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    lost = threading.Event()
    monkeypatch.setattr(listener, "admit", admit_after_a_failure)
    monkeypatch.setattr(listener, "RETRY_SECONDS", 0.2)
    smtp = Intake(context, on_lost=lost.set)
    try:
        with smtplib.SMTP("127.0.0.1", context.settings.smtp_port, timeout=10) as client:
            client.sendmail("a@client.example", ["support@shop.example"], MAIL)
        deadline = time.monotonic() + 30  # the admitter runs when a CPU is idle: under load, later
        while not rows(context) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert smtp.admitter.is_alive() and not failures, "still running: it retries, it does not give up"
        assert len(rows(context)) == 1, "admitted by the retry, before any stop"
    finally:
        smtp.stop()


def test_names_arriving_close_together_are_admitted_in_one_transaction(
        context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[int] = []
    real = listener.admit

    def counted(context: Context, paths: list[Path], **kwargs: Any) -> list[int]:
        batches.append(len(paths))
        return real(context, paths, **kwargs)

    monkeypatch.setattr(listener, "admit", counted)
    monkeypatch.setattr(listener, "GATHER_SECONDS", 3.0)  # wide enough for three mails, one after the other
    smtp = Intake(context, on_lost=threading.Event().set)
    try:
        with smtplib.SMTP("127.0.0.1", context.settings.smtp_port, timeout=10) as client:
            for n in range(3):
                client.sendmail("a@client.example", ["support@shop.example"], MAIL.replace(b"<l1@c>", b"<l%d@c>" % n))
    finally:
        smtp.stop()
    assert batches == [3] and len(rows(context)) == 3


def test_sessions_ending_their_data_together_are_written_in_one_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.intake import smtp, spool

    batches: list[int] = []
    real = spool.write_incoming

    def counted(data_dir: Path, messages: list[tuple[bytes, spool.Envelope]],
                spares: spool.Spares | None = None) -> list[Path]:
        batches.append(len(messages))
        return real(data_dir, messages, spares)

    monkeypatch.setattr(spool, "write_incoming", counted)
    named: list[list[Path]] = []
    writer = smtp.GroupWriter(tmp_path, named.append)

    async def three_sessions() -> list[Path]:
        return list(await asyncio.gather(*(writer.write(MAIL, spool.Envelope("smtp", "support@shop.example"))
                                           for _ in range(3))))

    paths = asyncio.run(three_sessions())
    assert batches == [3] and len(set(paths)) == 3 and all(spool.read_message(p)[1] == MAIL for p in paths)
    assert named == [paths], "named for admission together, once written"
    asyncio.run(three_sessions())
    assert batches == [3, 3] and len(named) == 2, "the next turn makes the next batch"


def test_a_batch_that_cannot_be_written_fails_each_of_its_sessions(tmp_path: Path) -> None:
    from gateway.intake import smtp, spool

    named: list[list[Path]] = []
    writer = smtp.GroupWriter(tmp_path, named.append)
    deadline = time.monotonic() + 30
    while len(writer.spares) < spool.Spares.COUNT and time.monotonic() < deadline:
        time.sleep(0.01)  # the spares made first: removing the folder while they are made races their thread
    shutil.rmtree(spool.incoming_folder(tmp_path))  # the disk is gone, say (the spares in it with it)

    async def two_sessions() -> list[object]:
        return list(await asyncio.gather(*(writer.write(MAIL, spool.Envelope("smtp", "support@shop.example"))
                                           for _ in range(2)), return_exceptions=True))

    assert [type(result) for result in asyncio.run(two_sessions())] == [FileNotFoundError, FileNotFoundError]
    assert named == [], "nothing to admit"


def test_a_port_in_use_stops_the_start_with_an_error_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(home=tmp_path, data_dir=tmp_path / "var", mailboxes=(Mailbox("support@shop.example"),),
                            smtp_host="127.0.0.1", smtp_port=port, http_host="127.0.0.1", http_port=port)
        with pytest.raises(listener.ListenerError, match=rf"^SMTP on 127\.0\.0\.1:{port}: "):
            listener.check_port(settings)
        with pytest.raises(ConfigError, match=rf"^web on 127\.0\.0\.1:{port}: "):
            bind_web(settings)
    bind_web(settings).close()  # free again
