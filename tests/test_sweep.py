"""The sweep queues again what the broker lost, from what the database says is left, and nothing
that is in hand or not due yet (a second send of a mail the relay will retry is a duplicate)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Update, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.context import Context, open_context
from gateway.models import Inbound, Outbox
from gateway.outbound.outbox import deliver_all
from gateway.service.broker import configure
from gateway.service.sweep import requeue_stalled
from gateway.settings import Mailbox, Settings


@pytest.fixture
def context(tmp_path: Path) -> Context:
    return open_context(Settings(home=tmp_path, data_dir=tmp_path / "var", requeue_seconds=300,
                                 mailboxes=(Mailbox("support@shop.example"),)))


def _queued(broker: StubBroker, queue: str) -> list[list[int]]:
    return [dramatiq.Message.decode(raw).args[0] for raw in list(broker.queues[queue].queue)]


def test_only_work_waiting_past_requeue_seconds_is_queued_again(context: Context) -> None:
    broker = configure(context.settings)
    assert isinstance(broker, StubBroker)
    now = utcnow()
    with context.sessions.begin() as session:
        def inbound(minutes_ago: int, status: str = "pending") -> Inbound:
            return Inbound(source="smtp", mailbox="support@shop.example", raw_path="x", size=1, status=status,
                           received_at=now - timedelta(minutes=minutes_ago))

        def outbox(created_minutes_ago: int, next_attempt_in: int | None = None, status: str = "pending") -> Outbox:
            return Outbox(sender="support@shop.example", recipient="jean@client.example", template="t",
                          message_id="<m>", raw=b"", status=status,
                          created_at=now - timedelta(minutes=created_minutes_ago),
                          next_attempt_at=None if next_attempt_in is None else now + timedelta(minutes=next_attempt_in))

        rows = {"stalled message": inbound(10), "new message": inbound(1), "processed": inbound(60, "processed"),
                "lost mail": outbox(10), "new mail": outbox(1), "sent": outbox(60, status="sent"),
                "retry due long ago": outbox(90, next_attempt_in=-10),
                "retry due soon": outbox(90, next_attempt_in=5), "retry just due": outbox(90, next_attempt_in=-1)}
        session.add_all(rows.values())
    requeue_stalled(context)
    assert _queued(broker, "inbound") == [[rows["stalled message"].id]]
    assert _queued(broker, "outbox") == [[rows["lost mail"].id, rows["retry due long ago"].id]]


def test_a_mail_queued_twice_is_sent_once_even_when_both_senders_run_at_once(
        context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep may queue again a mail the broker still holds: two senders, one mail."""
    sent: list[bytes] = []

    class SlowRelay:
        def deliver(self, mails: list[tuple[str, str, bytes]]) -> list[None]:
            time.sleep(0.3)  # both senders are in here at once, unless one could not claim
            sent.extend(raw for _sender, _recipient, raw in mails)
            return [None] * len(mails)

    monkeypatch.setattr("gateway.outbound.outbox.transport_for", lambda settings: SlowRelay())
    with context.sessions.begin() as session:
        rows = [Outbox(sender="support@shop.example", recipient=f"c{n}@client.example", template="t",
                       message_id=f"<m{n}>", raw=f"mail {n}".encode()) for n in range(3)]
        session.add_all(rows)
    ids = [row.id for row in rows]
    senders = [threading.Thread(target=deliver_all, args=(context, ids)) for _ in range(2)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert sorted(sent) == [b"mail 0", b"mail 1", b"mail 2"]
    with context.sessions() as session:
        assert set(session.scalars(select(Outbox.status))) == {"sent"}
        assert set(session.scalars(select(Outbox.claim))) == {None}


def test_a_sender_that_breaks_frees_its_mails_for_the_next_try(context: Context,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenRelay:
        def deliver(self, mails: list[tuple[str, str, bytes]]) -> list[None]:
            raise RuntimeError("a bug in the transport")

    with context.sessions.begin() as session:
        row = Outbox(sender="support@shop.example", recipient="c@client.example", template="t", message_id="<m>",
                     raw=b"mail")
        session.add(row)
    monkeypatch.setattr("gateway.outbound.outbox.transport_for", lambda settings: BrokenRelay())
    with pytest.raises(RuntimeError):
        deliver_all(context, [row.id])
    with context.sessions() as session:
        assert session.scalars(select(Outbox.claim)).one() is None, "not held for ten minutes"
    monkeypatch.undo()
    assert deliver_all(context, [row.id]) == []
    with context.sessions() as session:
        assert session.scalars(select(Outbox.status)).one() == "sent"


def test_a_database_gone_between_the_claim_and_its_mails_leaves_nothing_claimed(
        context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL restarted right after a sender claimed its mails: nothing more can be written, the claim
    cannot be undone afterwards, so it must not outlive its transaction (the mails would wait ``CLAIM``)."""
    with context.sessions.begin() as session:
        row = Outbox(sender="support@shop.example", recipient="c@client.example", template="t", message_id="<m>",
                     raw=b"mail")
        session.add(row)
    execute, gone = Session._execute_internal, [False]

    def until_the_claim(self: Session, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if gone[0]:
            raise OperationalError(str(statement), {}, ConnectionError("server closed the connection"))
        result = execute(self, statement, *args, **kwargs)
        gone[0] = isinstance(statement, Update)
        return result

    monkeypatch.setattr(Session, "_execute_internal", until_the_claim)  # every statement of a session
    with pytest.raises(OperationalError):
        deliver_all(context, [row.id])
    monkeypatch.undo()
    with context.sessions() as session:
        assert session.scalars(select(Outbox.claim)).one() is None, "not held for ten minutes"
    assert deliver_all(context, [row.id]) == []
