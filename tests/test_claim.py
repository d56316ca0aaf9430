"""Claims: one conversation at a time, in the order received; different ones side by side, across
threads and (on PostgreSQL) processes; and the conversation keys admission gives."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from gateway.clock import utcnow
from gateway.context import Context, open_context
from gateway.intake.admission import forget_node, mark_admitted, store
from gateway.models import Inbound, IntakeNode
from gateway.pipeline.claim import NODE_SILENT_SECONDS, Claims
from gateway.pipeline.process import process_batch
from gateway.settings import Mailbox, Settings
from gateway.tokens import mint_reply_token


@pytest.fixture(params=["sqlite", "postgresql"])
def context(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    context = open_context(Settings(home=tmp_path, data_dir=tmp_path / "var", database_url=database_url,
                                    secret_key="k" * 40, mailboxes=(Mailbox("support@shop.example"),)))
    yield context
    context.engine.dispose()


def _mail(sender: str, number: int, to: str = "support@shop.example", **headers: str) -> bytes:
    extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: m{number}\r\nMessage-ID: <m{number}@client.example>\r\n"
            f"{extra}\r\nBonjour {number}\r\n").encode()


def _store(context: Context, sender: str, number: int, to: str = "support@shop.example", **headers: str) -> int:
    return store(context, _mail(sender, number, to, **headers), source="smtp", mailbox="support@shop.example")


def _done(context: Context, ids: list[int]) -> None:
    with context.sessions.begin() as session:
        session.execute(update(Inbound).where(Inbound.id.in_(ids)).values(status="processed"))


def _conversations(context: Context) -> dict[int, str]:
    with context.sessions() as session:
        return dict(session.execute(select(Inbound.id, Inbound.conversation)).all())


def test_a_conversation_is_claimed_whole_in_order_and_held_until_released(context: Context) -> None:
    a1, b1, a2, c1, a3 = (_store(context, sender, n) for n, sender in enumerate(
        ["a@client.example", "b@client.example", "a@client.example", "c@client.example", "a@client.example"]))
    claims = Claims(context)
    try:
        assert claims.take(3) == [a1, a2, b1], "the oldest three, each conversation's in order"
        assert claims.take(10) == [c1], "a is held: its third waits behind the two taken; c goes"
        assert claims.take(10) == []
        _done(context, [a1, a2])
        claims.release([a1, a2])
        assert claims.take(10) == [a3]
    finally:
        claims.close()


def test_a_conversation_whose_first_message_is_held_gives_none_of_the_others(context: Context) -> None:
    first = _store(context, "a@client.example", 1)
    claims = Claims(context)
    try:
        assert claims.take(10) == [first]
        second = _store(context, "a@client.example", 2)
        assert claims.take(10) == [], "the second waits for the first's commit"
        _done(context, [first])
        claims.release([first])
        assert claims.take(10) == [second]
    finally:
        claims.close()


HOLDER = """
import sys, time
from pathlib import Path
from gateway.context import open_context
from gateway.pipeline.claim import Claims
from gateway.settings import Mailbox, Settings
context = open_context(Settings(home=Path(sys.argv[1]), data_dir=Path(sys.argv[1]) / "var", database_url=sys.argv[2],
                                mailboxes=(Mailbox("support@shop.example"),)), migrated=True)
print(Claims(context).take(1), flush=True)
time.sleep(60)
"""


def test_two_processes_never_hold_one_conversation_and_a_killed_one_holds_nothing(
        tmp_path: Path, postgres_url: str) -> None:
    context = open_context(Settings(home=tmp_path, data_dir=tmp_path / "var", database_url=postgres_url,
                                    mailboxes=(Mailbox("support@shop.example"),)))
    first = _store(context, "a@client.example", 1)
    second = _store(context, "b@client.example", 2)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), postgres_url],
                              stdout=subprocess.PIPE, text=True)
    claims = Claims(context)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == f"[{first}]"
        assert claims.take(10) == [second], "a is held by the other process"
        claims.release([second])
        holder.kill()
        holder.wait()
        deadline = time.monotonic() + 10  # the server notices the connection is gone
        while (taken := claims.take(10)) != [first, second] and time.monotonic() < deadline:
            claims.release(taken)
            time.sleep(0.05)
        assert taken == [first, second], "killed mid-batch: its messages, still pending, are claimed again"
    finally:
        holder.kill()
        holder.communicate()
        claims.close()
        context.engine.dispose()


def test_a_message_applied_by_another_process_between_the_read_and_the_lock_is_left_out(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", database_url=postgres_url,
                        mailboxes=(Mailbox("support@shop.example"),))
    context = open_context(settings)
    first = _store(context, "a@client.example", 1)
    second = _store(context, "a@client.example", 2)
    claims = Claims(context)
    real = claims._pending

    def read_then_someone_applies_the_first(limit: int, leaving_out: set[str]) -> list[tuple[int, str]]:
        pending = real(limit, leaving_out)
        _done(context, [first])
        return pending

    monkeypatch.setattr(claims, "_pending", read_then_someone_applies_the_first)
    try:
        assert claims.take(10) == [], "its first is gone: the rest is claimed afresh"
        monkeypatch.setattr(claims, "_pending", real)
        assert claims.take(10) == [second]
    finally:
        claims.close()
        context.engine.dispose()


def test_a_host_that_has_not_admitted_everything_holds_later_mail_back(tmp_path: Path, postgres_url: str) -> None:
    context = open_context(Settings(home=tmp_path, data_dir=tmp_path / "var", database_url=postgres_url,
                                    mailboxes=(Mailbox("support@shop.example"),)))
    behind = utcnow()
    mark_admitted(context, "mx2", behind)
    later = _store(context, "a@client.example", 1)
    claims = Claims(context)
    try:
        assert claims.take(10) == [], "mx2 may still hold older mail of this conversation"
        mark_admitted(context, "mx2", utcnow())
        assert claims.take(10) == [later]
        claims.release([later])
        mark_admitted(context, "mx2", behind)
        with context.sessions.begin() as session:
            session.execute(update(Inbound).values(status="pending"))
            session.execute(update(Inbound).values(received_at=utcnow()))
        assert claims.take(10) == []
        with context.sessions.begin() as session:
            session.execute(update(IntakeNode).values(seen_at=utcnow() - timedelta(seconds=NODE_SILENT_SECONDS + 1)))
        assert claims.take(10) == [later], "a host silent for long no longer holds anything back"
        claims.release([later])
        mark_admitted(context, "mx2", behind)
        assert claims.take(10) == []
        forget_node(context, "mx2")
        assert claims.take(10) == [later], "a host stopped cleanly holds nothing back"
    finally:
        claims.close()
        context.engine.dispose()


def test_the_conversation_is_the_tokens_request_else_the_referenced_one_else_the_sender(context: Context) -> None:
    request_id = 7
    token = mint_reply_token(context.settings.secret_key, "support", request_id, 9)
    by_token = _store(context, "marie@client.example", 1, to=f"support+{token}@shop.example")
    forged = _store(context, "marie@client.example", 2, to=f"support+{token[:-2]}aa@shop.example")
    opening = _store(context, "paul@client.example", 3)
    answer = _store(context, "jeanne@client.example", 4, In_Reply_To="<m3@client.example>")
    alone = _store(context, "Jeanne@Client.example", 5)
    assert _conversations(context) == {
        by_token: f"request:{request_id}",
        forged: "sender:marie@client.example",
        opening: "sender:paul@client.example",
        answer: "sender:paul@client.example",  # it answers a message admitted, not applied yet
        alone: "sender:jeanne@client.example",
    }


def test_a_sender_key_keeps_no_nul_even_from_an_envelope(context: Context) -> None:
    raw = b"To: support@shop.example\r\nSubject: sans From\r\nMessage-ID: <nul@c>\r\n\r\nBonjour\r\n"
    inbound_id = store(context, raw, source="imap", mailbox="support@shop.example", envelope_from="a\x00b@x.example")
    assert _conversations(context)[inbound_id] == "sender:ab@x.example"


def test_a_backlog_held_by_another_process_does_not_hide_the_conversations_after_it(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.pipeline.claim.LOOK_AHEAD", 2)  # a window of 4 messages for 2 wanted
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", database_url=postgres_url,
                        mailboxes=(Mailbox("support@shop.example"),))
    one, other = open_context(settings), open_context(settings)  # two engines, as two processes have
    backlog = [_store(one, "busy@client.example", n) for n in range(6)]
    calm = _store(one, "calm@client.example", 6)
    holder, claims = Claims(one), Claims(other)
    try:
        assert holder.take(2) == backlog[:2]
        assert claims.take(2) == [calm], "past the backlog the other process holds"
    finally:
        holder.close()
        claims.close()
        one.engine.dispose()
        other.engine.dispose()


def test_a_conversation_keeps_its_key_once_its_request_exists(context: Context) -> None:
    """The regression CI found: a reply admitted after the request was opened took ``request:N`` while
    the reply before it, admitted earlier, had the opener's ``sender:`` key, and the two went side by
    side, out of order."""
    opening = _store(context, "paul@client.example", 1)
    first_reply = _store(context, "paul@client.example", 2, In_Reply_To="<m1@client.example>")
    process_batch(context, [opening, first_reply])
    with context.sessions() as session:
        request_id = session.get_one(Inbound, opening).request_id
    assert request_id is not None
    token = mint_reply_token(context.settings.secret_key, "support", request_id, 1)
    second_reply = _store(context, "paul@client.example", 3, In_Reply_To="<m2@client.example>")
    by_token = _store(context, "paul@client.example", 4, to=f"support+{token}@shop.example")
    keys = _conversations(context)
    assert {keys[second_reply], keys[by_token]} == {keys[opening]} == {"sender:paul@client.example"}
