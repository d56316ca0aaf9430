"""Processing stored messages: failures are kept and replayable, replays apply nothing twice, and messages
applied together in one transaction end as if each came alone."""

from __future__ import annotations

import logging
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.context import Context, open_context
from gateway.helpdesk import find_person, join, open_request, upsert_person
from gateway.intake.admission import store, store_all
from gateway.intake.spool import Envelope, raw_folder
from gateway.models import Comment, Event, Inbound, MessageRef, Outbox, Participant, Request, RuleMatch
from gateway.orders.card import ensure_order
from gateway.pipeline.process import Outcome, mark, process, process_batch, process_safely, read_and_parse
from gateway.service.sweep import sweep
from gateway.settings import Mailbox, OrderTimes, Settings
from gateway.tokens import mint_reply_token, verify_reply_token

RAW = b"From: a@client.example\r\nTo: support@shop.example\r\nSubject: x\r\nMessage-ID: <p1@c>\r\n\r\nBonjour\r\n"


@pytest.fixture
def context(tmp_path: Path) -> Context:
    return open_context(Settings(home=tmp_path, data_dir=tmp_path / "var",
                                 mailboxes=(Mailbox("support@shop.example"),)))


def test_a_message_that_cannot_be_processed_is_kept_failed_and_replays_later(
        context: Context, caplog: pytest.LogCaptureFixture) -> None:
    inbound_id = store(context, RAW, source="smtp", mailbox="support@shop.example")
    with context.sessions() as session:
        row = session.get(Inbound, inbound_id)
        assert row is not None
        path = raw_folder(context.settings.data_dir) / row.raw_path
    kept = path.read_bytes()
    path.unlink()
    outcome = process_safely(context, inbound_id)
    assert outcome.status == "failed" and "FileNotFoundError" in outcome.decision
    assert f"message {inbound_id} failed" in caplog.text and f"gateway replay {inbound_id}" in caplog.text
    path.write_bytes(kept)
    with context.sessions.begin() as session:
        session.get(Inbound, inbound_id).status = "pending"  # type: ignore[union-attr]
    assert process(context, inbound_id).status == "processed"
    assert process(context, inbound_id).status == "processed", "a second run changes nothing"


def test_the_same_message_stored_twice_applies_once(context: Context) -> None:
    first = store(context, RAW, source="smtp", mailbox="support@shop.example")
    second = store(context, b"Received: from relay\r\n" + RAW, source="imap", mailbox="support@shop.example")
    assert process(context, first).status == "processed"
    duplicate = process(context, second)
    assert duplicate.status == "duplicate" and "<p1@c>" in duplicate.decision


def _stored(context: Context, number: int, body: str = "Bonjour", sender: str = "a@client.example") -> int:
    raw = (f"From: {sender}\r\nTo: support@shop.example\r\nSubject: question {number}\r\n"
           f"Message-ID: <batch{number}@c>\r\n\r\n{body}\r\n").encode()
    return store(context, raw, source="smtp", mailbox="support@shop.example")


def _coordinator(context: Context) -> None:
    with context.sessions.begin() as session:
        upsert_person(session, "camille@shop.example", role="coordinator")


def test_plain_messages_of_a_batch_apply_in_one_transaction_each_with_its_own_mails(context: Context) -> None:
    _coordinator(context)
    ids = [_stored(context, n, sender=f"c{n}@client.example") for n in range(3)]
    commits = []
    event.listen(context.engine, "commit", lambda _connection: commits.append(1))
    outcomes = process_batch(context, ids)
    assert len(commits) == 1
    assert [o.status for o in outcomes] == ["processed"] * 3
    with context.sessions() as session:
        for inbound_id, outcome in zip(ids, outcomes, strict=True):
            row = session.get(Inbound, inbound_id)
            assert row is not None and row.status == "processed" and row.request_id == outcome.request_id
            recipients = {r.recipient for r in session.scalars(select(Outbox).where(Outbox.id.in_(outcome.outbox_ids)))}
            assert recipients == {"camille@shop.example", f"c{ids.index(inbound_id)}@client.example"}
            assert {r.request_id for r in session.scalars(select(Outbox).where(Outbox.id.in_(outcome.outbox_ids)))} \
                == {outcome.request_id}


def test_a_duplicate_or_a_broken_message_in_a_batch_leaves_the_others_as_if_each_came_alone(
        context: Context) -> None:
    first, twice, broken, last = (_stored(context, 1), _stored(context, 1), _stored(context, 2), _stored(context, 3))
    with context.sessions() as session:
        row = session.get(Inbound, broken)
        assert row is not None
        (raw_folder(context.settings.data_dir) / row.raw_path).unlink()
    outcomes = process_batch(context, [first, twice, broken, last])
    assert [o.status for o in outcomes] == ["processed", "duplicate", "failed", "processed"]
    with context.sessions() as session:
        assert session.scalar(select(func.count(Request.id))) == 2
        statuses = dict(session.execute(select(Inbound.id, Inbound.status)).all())
    assert statuses == {first: "processed", twice: "duplicate", broken: "failed", last: "processed"}


def test_a_batch_split_by_a_fault_is_said_as_a_warning_and_one_split_by_a_duplicate_is_not(
        context: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A fault of the batch path itself costs only speed, since each message alone still applies: unseen
    at debug level, one such fault once split every batch holding a reply to a mail of its own batch."""
    caplog.set_level(logging.DEBUG, "gateway.inbound")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and "one by one" in r.getMessage()]

    process_batch(context, [_stored(context, 1), _stored(context, 1)])
    assert "one by one" in caplog.text and warnings() == [], "a duplicate splits its batch as it should: no warning"
    _break_applying(monkeypatch)
    process_batch(context, [_stored(context, 2), _stored(context, 3)])
    assert warnings() == ["batch of 2 messages done one by one: _Broken: a step of the pipeline broke"]


def _raw_path(context: Context, inbound_id: int) -> Path:
    with context.sessions() as session:
        row = session.get(Inbound, inbound_id)
        assert row is not None
        return raw_folder(context.settings.data_dir) / row.raw_path


def test_messages_read_ahead_are_applied_as_read_and_one_left_out_is_read_by_the_processor(
        context: Context) -> None:
    _coordinator(context)
    first, unreadable, last = (_stored(context, n, sender=f"c{n}@client.example") for n in range(3))
    _raw_path(context, unreadable).unlink()
    ahead = read_and_parse(context, [first, unreadable, last])
    assert set(ahead) == {first, last}
    assert ahead[first].parsed.subject == "question 0"
    for inbound_id in (first, last):  # applying them must not need their files again
        _raw_path(context, inbound_id).unlink()
    outcomes = process_batch(context, [first, unreadable, last], ahead)
    assert [o.status for o in outcomes] == ["processed", "failed", "processed"]
    assert "FileNotFoundError" in outcomes[1].decision
    assert read_and_parse(context, [first, last]) == {}, "only messages still waiting are read ahead"


def test_refused_commands_in_a_batch_are_refused_alone(context: Context) -> None:
    _coordinator(context)
    opened = process_batch(context, [_stored(context, 1)])[0]
    assert opened.request_id is not None
    with context.sessions.begin() as session:
        request = session.get(Request, opened.request_id)
        assert request is not None
        coordinator = join(session, request, "camille@shop.example", role="coordinator",
                           person=find_person(session, "camille@shop.example"))
        session.flush()
        token = mint_reply_token(context.settings.secret_key, "support", request.id, coordinator.id)

    def reply(number: int, body: str) -> int:
        raw = (f"From: camille@shop.example\r\nTo: support+{token}@shop.example\r\nSubject: Re: question\r\n"
               f"Message-ID: <reply{number}@shop>\r\n\r\n{body}\r\n").encode()
        return store(context, raw, source="smtp", mailbox="support@shop.example",
                     envelope_to=(f"support+{token}@shop.example",))

    outcomes = process_batch(context, [reply(1, "#stauts resolved\n\nDone."), reply(2, "Tout est en ordre.")])
    assert outcomes[0].status == "processed" and "commands refused" in outcomes[0].decision
    assert outcomes[1].status == "processed" and "public comment" in outcomes[1].decision
    with context.sessions() as session:
        texts = [c.text for c in session.scalars(select(Comment).where(Comment.request_id == opened.request_id))]
    assert texts == ["Bonjour", "Tout est en ordre."]


def test_replies_by_token_in_one_batch_each_land_in_their_request_and_mail_their_customer(context: Context) -> None:
    _coordinator(context)
    opened = process_batch(context, [_stored(context, n, sender=f"c{n}@client.example") for n in range(2)])
    tokens = []
    with context.sessions.begin() as session:
        for outcome in opened:
            request = session.get(Request, outcome.request_id)
            assert request is not None
            coordinator = next(p for p in request.participants if p.email == "camille@shop.example")
            tokens.append(mint_reply_token(context.settings.secret_key, "support", request.id, coordinator.id))
    replies = [store(context, (f"From: camille@shop.example\r\nTo: support+{token}@shop.example\r\n"
                               f"Subject: Re: question\r\nMessage-ID: <answer{n}@shop>\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                               f"Réponse {n}\r\n").encode(),
                     source="smtp", mailbox="support@shop.example", envelope_to=(f"support+{token}@shop.example",))
               for n, token in enumerate(tokens)]
    outcomes = process_batch(context, replies)
    assert [(o.status, o.request_id) for o in outcomes] == [("processed", o.request_id) for o in opened]
    with context.sessions() as session:
        for n, outcome in enumerate(outcomes):
            texts = session.scalars(select(Comment.text).where(Comment.request_id == outcome.request_id)).all()
            assert texts == ["Bonjour", f"Réponse {n}"]
            mailed = session.scalars(select(Outbox.recipient).where(Outbox.id.in_(outcome.outbox_ids))).all()
            assert mailed == [f"c{n}@client.example"]


def test_new_requests_of_a_batch_flush_together_and_each_mail_names_its_own_participant(context: Context) -> None:
    _coordinator(context)
    ids = [_stored(context, n, sender=f"c{n}@client.example") for n in range(4)]
    flushes = []

    def count(_session: Session, _context: object) -> None:
        flushes.append(1)

    event.listen(Session, "after_flush", count)
    try:
        outcomes = process_batch(context, ids)
    finally:
        event.remove(Session, "after_flush", count)
    assert len(flushes) < len(ids), "a new request is not flushed on its own"
    assert [o.decision for o in outcomes] == [f"new helpdesk request #{o.request_id} from c{n}@client.example"
                                              for n, o in enumerate(outcomes)]
    with context.sessions() as session:
        for outcome in outcomes:
            for mail in session.scalars(select(Outbox).where(Outbox.id.in_(outcome.outbox_ids))):
                token = verify_reply_token(context.settings.secret_key,
                                           message_from_bytes(mail.raw)["Reply-To"].split("+")[1].split("@")[0],
                                           "support")
                assert token is not None and token.request_id == outcome.request_id == mail.request_id
                participant = session.get(Participant, token.participant_id)
                assert participant is not None and participant.email == mail.recipient


def test_mails_waiting_for_ids_are_written_before_another_message_of_the_batch_changes_their_request(
        context: Context) -> None:
    _coordinator(context)
    opened = process_batch(context, [_stored(context, 1, sender="c1@client.example")])[0]
    with context.sessions.begin() as session:
        upsert_person(session, "dominique@shop.example", role="coordinator")  # not a participant yet
        request = session.get(Request, opened.request_id)
        assert request is not None
        tokens = {p.email: mint_reply_token(context.settings.secret_key, "support", request.id, p.id)
                  for p in request.participants}

    def reply(sender: str, number: int, body: str) -> int:
        to = f"support+{tokens[sender]}@shop.example"
        return store(context, (f"From: {sender}\r\nTo: {to}\r\nSubject: Re: question 1\r\n"
                               f"Message-ID: <r{number}@x>\r\n\r\n{body}\r\n").encode(),
                     source="smtp", mailbox="support@shop.example", envelope_to=(to,))

    outcomes = process_batch(context, [reply("c1@client.example", 1, "Any news?"),
                                       reply("camille@shop.example", 2, "On it.")])
    assert [o.decision.split(" by ")[0] for o in outcomes] == [f"public comment on #{opened.request_id}"] * 2

    def told_dominique(outcome_ids: list[int]) -> str:
        with context.sessions() as session:
            mail = session.scalars(select(Outbox).where(Outbox.id.in_(outcome_ids),
                                                        Outbox.recipient == "dominique@shop.example")).one()
            part = message_from_bytes(mail.raw).get_payload(0)
        return part.get_payload(decode=True).decode()

    assert "statut nouvelle" in told_dominique(outcomes[0].outbox_ids), "written before the reply that changed it"
    assert "statut en cours" in told_dominique(outcomes[1].outbox_ids)


def test_what_a_batch_only_appends_is_there_for_the_next_message_and_after_the_commit(context: Context) -> None:
    _coordinator(context)
    opening = _stored(context, 1, sender="c1@client.example")
    follow_up = store(context, (b"From: c1@client.example\r\nTo: support@shop.example\r\nSubject: Re: question 1\r\n"
                                b"Message-ID: <again1@c>\r\nIn-Reply-To: <batch1@c>\r\n\r\nAlso the lid.\r\n"),
                      source="smtp", mailbox="support@shop.example")
    commits = []
    event.listen(context.engine, "commit", lambda _connection: commits.append(1))
    opened, followed = process_batch(context, [opening, follow_up])
    assert followed.request_id == opened.request_id and "(via references)" in followed.decision, \
        "the Message-ID the first message left is found by the second"
    assert len(commits) == 1, "applied together, not one by one after the batch failed"
    with context.sessions() as session:
        refs = dict(session.execute(select(MessageRef.message_id, MessageRef.request_id)
                                    .where(MessageRef.outgoing.is_(False))).all())
        matched = session.execute(select(RuleMatch.inbound_id, RuleMatch.request_id)).all()
    assert refs == {"<batch1@c>": opened.request_id, "<again1@c>": opened.request_id}
    assert (follow_up, opened.request_id) in matched, "the customer's comment matched a built-in rule"
    assert {request_id for _inbound_id, request_id in matched} == {opened.request_id}


def test_a_message_from_no_one_in_a_batch_is_kept_degraded_said_without_a_traceback(
        context: Context, caplog: pytest.LogCaptureFixture) -> None:
    """A message without a From is a fact of the message, not a fault of the gateway: its log line says so
    plainly, and the batch it came in goes one message at a time without a warning."""
    _coordinator(context)
    nobody = RAW.replace(b"From: a@client.example\r\n", b"").replace(b"<p1@c>", b"<nobody@c>")
    ids = store_all(context, [(RAW, Envelope("smtp", "support@shop.example")),
                              (nobody, Envelope("smtp", "support@shop.example"))])
    with caplog.at_level(logging.INFO, logger="gateway.inbound"):
        outcomes = process_batch(context, ids)
    assert [outcome.status for outcome in outcomes] == ["processed", "degraded"]
    said = [record for record in caplog.records if "could not be applied" in record.getMessage()]
    assert [record.getMessage() for record in said] == [
        f"message {ids[1]} could not be applied: Ownerless: the message has no sender address; keeping it degraded"]
    assert not said[0].exc_info, "no traceback"
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING
                and "done one by one" in record.getMessage()]


class _Broken(RuntimeError):
    """What a bug in a step of the pipeline raises."""


def _break_applying(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise _Broken("a step of the pipeline broke")

    monkeypatch.setattr("gateway.pipeline.process.apply_message", broken)


def test_a_message_the_pipeline_breaks_on_becomes_a_degraded_request_the_coordinators_are_told_of(
        context: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    _coordinator(context)
    raw = ("From: Jérôme <jerome@client.example>\r\nTo: support@shop.example\r\nSubject: Colis abîmé\r\n"
           "Message-ID: <broken1@client.example>\r\n\r\nMon colis est arrivé abîmé.\r\n").encode()
    inbound_id = store(context, raw, source="smtp", mailbox="support@shop.example")
    _break_applying(monkeypatch)
    outcome = process_safely(context, inbound_id)
    assert outcome.status == "degraded"
    assert f"message {inbound_id} could not be applied: _Broken: a step of the pipeline broke" in caplog.text
    with context.sessions() as session:
        row = session.get(Inbound, inbound_id)
        assert row is not None and row.status == "degraded" and row.request_id == outcome.request_id
        request = session.get(Request, outcome.request_id)
        assert request is not None and request.subject == "Colis abîmé" and request.status == "new"
        [comment] = request.comments
        assert comment.text == "Mon colis est arrivé abîmé."
        assert comment.visibility == "private" and comment.author_email == "jerome@client.example"
        assert comment.degraded == "_Broken: a step of the pipeline broke"
        [attached] = comment.attachments
        assert attached.filename == f"message-{inbound_id}.eml" and attached.size == len(raw)
        assert (context.settings.data_dir / "attachments" / attached.sha256[:2] / attached.sha256).read_bytes() == raw
        mails = session.scalars(select(Outbox).where(Outbox.id.in_(outcome.outbox_ids))).all()
        assert [(m.recipient, m.template) for m in mails] == [("camille@shop.example", "degraded.coordinator")]
        assert b"_Broken: a step of the pipeline broke" in mails[0].raw
    again = process_safely(context, inbound_id)
    assert again.status == "duplicate"
    with context.sessions() as session:
        assert session.scalar(select(func.count(Request.id))) == 1, "kept once, whatever replays it"


def test_a_reply_the_pipeline_breaks_on_is_kept_on_the_request_its_token_names(
        context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    _coordinator(context)
    [opened] = process_batch(context, [_stored(context, 1, sender="jerome@client.example")])
    with context.sessions() as session:
        request = session.get(Request, opened.request_id)
        assert request is not None
        requester = next(p for p in request.participants if p.role == "requester")
        token = mint_reply_token(context.settings.secret_key, "support", request.id, requester.id)
    reply = store(context, (f"From: jerome@client.example\r\nTo: support+{token}@shop.example\r\n"
                            "Subject: Re: question 1\r\nMessage-ID: <broken2@client.example>\r\n\r\n"
                            "#status resolved\r\nMerci, toujours rien.\r\n").encode(),
                  source="smtp", mailbox="support@shop.example", envelope_to=(f"support+{token}@shop.example",))
    _break_applying(monkeypatch)
    outcome = process_safely(context, reply)
    assert (outcome.status, outcome.request_id) == ("degraded", opened.request_id)
    with context.sessions() as session:
        request = session.get(Request, opened.request_id)
        assert request is not None and request.status == "new", "no command of a degraded message applies"
        degraded = request.comments[-1]
        assert (degraded.author_email, degraded.author_role, degraded.visibility) == (
            "jerome@client.example", "requester", "private")
        assert degraded.text == "#status resolved\nMerci, toujours rien."


def test_a_message_the_parser_itself_breaks_on_is_kept_with_what_its_lines_say(
        context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(_raw: bytes) -> None:
        raise _Broken("the parser broke")

    monkeypatch.setattr("gateway.pipeline.process.parse", parse)
    monkeypatch.setattr("gateway.pipeline.degrade.parse", parse)
    raw = b"From: Zo\xc3\xa9 <zoe@client.example>\r\nSubject: Facture\r\n\tde juin\r\n\r\nCi-joint.\x00\r\n"
    outcome = process_safely(context, store(context, raw, source="smtp", mailbox="support@shop.example"))
    assert outcome.status == "degraded"
    with context.sessions() as session:
        request = session.get(Request, outcome.request_id)
        assert request is not None and request.subject == "Facture de juin"
        [comment] = request.comments
        assert (comment.author_email, comment.text) == ("zoe@client.example", "Ci-joint.")


def test_a_fault_of_the_gateway_itself_leaves_the_message_failed_for_replay(
        context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    def database_gone(*_args: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr("gateway.pipeline.process.apply_message", database_gone)
    outcome = process_safely(context, _stored(context, 1))
    assert outcome.status == "failed" and "OperationalError" in outcome.decision
    with context.sessions() as session:
        assert session.scalar(select(func.count(Request.id))) == 0


def test_a_message_stored_quiet_mails_no_one_whoever_applies_it_alone_or_in_a_batch(context: Context) -> None:
    """``gateway import --no-mail`` stores its messages quiet: interrupted, the processor that applies
    them later keeps their mails suppressed too, beside messages that do mail."""
    with context.sessions.begin() as session:
        upsert_person(session, "camille@shop.example", role="coordinator")
    quiet = Envelope("import", "support@shop.example", "", ("support@shop.example",), quiet=True)
    loud = Envelope("smtp", "support@shop.example", "b@client.example", ("support@shop.example",))
    old, history, fresh = store_all(context, [(RAW, quiet), (RAW.replace(b"<p1@c>", b"<p2@c>"), quiet),
                                              (RAW.replace(b"<p1@c>", b"<p3@c>").replace(b"a@client", b"b@client"),
                                               loud)])
    process(context, old)  # alone
    outcomes = process_batch(context, [history, fresh])  # together with a message that mails
    with context.sessions() as session:
        by_status = dict(session.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).all())
        fresh_mails = {row.recipient for row in session.scalars(select(Outbox).where(Outbox.status == "pending"))}
    assert by_status == {"suppressed": 4, "pending": 2}, "an acknowledgment and a notice each, recorded"
    assert fresh_mails == {"b@client.example", "camille@shop.example"}
    assert outcomes[0].outbox_ids == [] and len(outcomes[1].outbox_ids) == 2, "only the fresh one's are sent"


def test_a_quiet_message_the_pipeline_breaks_on_is_kept_degraded_and_mails_no_one(
        context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    _coordinator(context)
    quiet = Envelope("import", "support@shop.example", "", ("support@shop.example",), quiet=True)
    [inbound_id] = store_all(context, [(RAW, quiet)])
    _break_applying(monkeypatch)
    outcome = process_safely(context, inbound_id)
    assert outcome.status == "degraded" and outcome.outbox_ids == []
    with context.sessions() as session:
        assert [(m.template, m.status) for m in session.scalars(select(Outbox))] == [
            ("degraded.coordinator", "suppressed")]


def test_a_message_another_applier_committed_keeps_what_it_recorded(context: Context) -> None:
    inbound_id = store(context, RAW, source="smtp", mailbox="support@shop.example")
    applied = process(context, inbound_id)
    mark(context, inbound_id, Outcome("duplicate", "already applied (the loser of a race)"))
    with context.sessions() as session:
        row = session.get_one(Inbound, inbound_id)
        assert (row.status, row.decision) == ("processed", applied.decision)


def test_a_flood_counts_the_requests_of_its_own_batch_and_of_the_batches_before(context: Context) -> None:
    """Past ``requests_per_sender_hour`` new requests from one sender, the rest are kept without an
    acknowledgment: counted across batches (as stored) and within one (as the batch opens them)."""
    _coordinator(context)
    flooder = "flood@client.example"
    first = process_batch(context, [_stored(context, n, sender=flooder) for n in range(1, 4)])
    second = process_batch(context, [_stored(context, n, sender=flooder) for n in range(4, 9)])
    assert [o.status for o in first + second] == ["processed"] * 8
    with context.sessions() as session:
        acknowledged = session.scalar(select(func.count(Outbox.id)).where(Outbox.recipient == flooder))
        limited = session.scalars(select(Request.id).where(Request.events.any(kind="rate-limited"))).all()
    assert acknowledged == context.settings.requests_per_sender_hour == 5
    assert sorted(limited) == [o.request_id for o in second[2:]]


def test_a_customer_mail_read_as_a_delivery_report_of_no_mail_of_ours_opens_a_request(context: Context) -> None:
    """Words that read like a server's report ("could not be delivered") in a customer's mail that quotes
    none of our mails: the team is shown it, as a request; nobody answers it."""
    raw = (b"From: Paul <paul@client.example>\r\nTo: support@shop.example\r\nSubject: Undelivered parcel, order 88\r\n"
           b"Message-ID: <parcel@client.example>\r\n\r\nThe carrier says: your parcel could not be delivered, "
           b"the remote host refused it (550 5.1.1 recipient unknown).\r\nWhere is it?\r\n")
    inbound_id = store(context, raw, source="smtp", mailbox="support@shop.example")
    outcome = process(context, inbound_id)
    assert outcome.status == "processed" and outcome.request_id is not None, outcome.decision
    with context.sessions() as session:
        request = session.get_one(Request, outcome.request_id)
        assert request.subject == "Undelivered parcel, order 88"
        assert "Where is it?" in request.comments[0].text
        assert not session.scalars(select(Outbox).where(Outbox.recipient == "paul@client.example")).all()


def test_a_from_header_names_a_new_account_and_never_renames_one(context: Context) -> None:
    """Anyone can write a From: its name names an account that has none, but a stranger's "Carl - ACCOUNT
    LOCKED, pay at …" in front of Carl's address must not greet Carl, or a coordinator, in every mail after."""
    with context.sessions.begin() as session:
        upsert_person(session, "carl@client.example", name="Carl Martin")
        upsert_person(session, "camille@shop.example", role="coordinator", name="Camille")
        upsert_person(session, "nameless@client.example")
    froms = [("Carl - ACCOUNT LOCKED, pay at http://evil.example", "carl@client.example"),
             ("Refunds: call +1-555-0100", "camille@shop.example"), ("Nadia Nameless", "nameless@client.example"),
             ("Zoé Neuve", "zoe@client.example")]
    for number, (name, email) in enumerate(froms):
        raw = (f"From: \"{name}\" <{email}>\r\nTo: support@shop.example\r\nSubject: s{number}\r\n"
               f"Message-ID: <rename{number}@evil.example>\r\n\r\nBonjour\r\n").encode()
        inbound_id = store(context, raw, source="smtp", mailbox="support@shop.example")
        assert process(context, inbound_id).status == "processed"
    with context.sessions() as session:
        names = {email: find_person(session, email).name for email in  # type: ignore[union-attr]
                 ("carl@client.example", "camille@shop.example", "nameless@client.example", "zoe@client.example")}
    assert names == {"carl@client.example": "Carl Martin", "camille@shop.example": "Camille",
                     "nameless@client.example": "Nadia Nameless", "zoe@client.example": "Zoé Neuve"}


def test_a_request_keeps_300_characters_of_a_subject_and_mails_no_more(context: Context) -> None:
    """A stranger's 40 KB subject, with a victim's address in From, is not echoed whole to the victim."""
    with context.sessions.begin() as session:
        upsert_person(session, "camille@shop.example", role="coordinator")
    subject = "BUY CHEAP AT http://evil.example" + "".join(f"\r\n x{n}" for n in range(20_000))
    raw = (f"From: victim@else.example\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
           "Message-ID: <long@evil.example>\r\n\r\nBonjour\r\n").encode()
    outcome = process(context, store(context, raw, source="smtp", mailbox="support@shop.example"))
    with context.sessions() as session:
        request = session.get_one(Request, outcome.request_id)
        assert len(request.subject) <= 300 and request.subject.startswith("BUY CHEAP") and request.subject[-1] == "…"
        sizes = [len(row.raw) for row in session.scalars(select(Outbox))]
    assert sizes and max(sizes) < 20_000, sizes


BULK = (b"From: Newsletter <news@shop-news.example>\r\nTo: {to}\r\nSubject: Promo\r\nPrecedence: bulk\r\n"
        b"List-Id: <news.shop-news.example>\r\nMessage-ID: <n1@shop-news.example>\r\n\r\nSoldes\r\n")


def test_nothing_automatic_answers_a_request_a_robot_opened(tmp_path: Path) -> None:
    """A list's mail opens a request labelled ``automatic``: the coordinators are told, and a home's rule that
    mails the customer, and the order's acceptance deadline that cancels it, mail the coordinators at most,
    never the robot."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "thanks.toml").write_text('''[[rules]]
name = "thanks"
event = "message"
condition = 'subject =~~ "(?i)promo"'
actions = [{ notify = { template = "acknowledgment", to = "customer" } }]
''')
    orders = Mailbox("orders@shop.example", "orders", times=OrderTimes(acceptance_hours=1))
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", mailboxes=(Mailbox("support@shop.example"), orders))
    context = open_context(settings)
    with context.sessions.begin() as session:
        upsert_person(session, "camille@shop.example", role="coordinator")
    for mailbox in ("support@shop.example", "orders@shop.example"):
        raw = BULK.replace(b"{to}", mailbox.encode()).replace(b"<n1@", f"<{mailbox[0]}@".encode())
        assert process(context, store(context, raw, source="smtp", mailbox=mailbox)).status == "processed"
    with time_machine.travel(utcnow() + timedelta(hours=2), tick=False):
        assert [outcome.split(": ", 1)[1] for outcome in sweep(context).deadlines] == [
            "cancelled (not accepted within 1 hours)"]
    with context.sessions() as session:
        sent = {(row.recipient, row.template) for row in session.scalars(select(Outbox))}
        assert sent == {("camille@shop.example", "new_request.coordinator"), ("camille@shop.example",
                        "order_new.coordinator"), ("camille@shop.example", "order_cancelled.coordinator")}, \
            "no robot answered"
        events = [(event.kind, event.detail) for event in session.scalars(select(Event).order_by(Event.id))]
    assert ("not-sent", "acknowledgment to news@shop-news.example: the request was opened by an automatic mail") \
        in events
    assert ("not-sent", "order_cancelled to news@shop-news.example: the request was opened by an automatic mail") \
        in events


def test_a_reply_of_a_photo_alone_or_of_nothing_readable_is_a_comment_the_team_sees(context: Context) -> None:
    """A phone's photo with no words, and a text part that cannot be decoded, are kept as comments (the
    photo with it) and the team is told, rather than "no comment"."""
    with context.sessions.begin() as session:
        upsert_person(session, "camille@shop.example", role="coordinator")
    first = process(context, store(context, RAW, source="smtp", mailbox="support@shop.example"))
    with context.sessions() as session:
        requester = session.scalars(select(Participant).where(Participant.role == "requester")).one()
        token = mint_reply_token(context.settings.secret_key, "support", requester.request_id, requester.id)
    address = f"support+{token}@shop.example"
    photo = (f"From: a@client.example\r\nTo: {address}\r\nSubject: Re: x\r\nMessage-ID: <photo@c>\r\n"
             "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
             "Content-Type: image/png\r\nContent-Disposition: attachment; filename=damaged.png\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n").encode()
    broken = (f"From: a@client.example\r\nTo: {address}\r\nSubject: Re: x\r\nMessage-ID: <broken@c>\r\n"
              "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
              "Content-Transfer-Encoding: base64\r\n\r\n!!!!\r\n").encode()
    for raw in (photo, broken):
        assert process(context, store(context, raw, source="smtp", mailbox="support@shop.example")).status \
            == "processed"
    with context.sessions() as session:
        request = session.get_one(Request, first.request_id)
        photo_comment, broken_comment = request.comments[1:]
        assert [a.filename for a in photo_comment.attachments] == ["damaged.png"]
        assert broken_comment.text.startswith("(no text could be read: the mail is kept as message ")
        told = session.scalars(select(Outbox).where(Outbox.recipient == "camille@shop.example")).all()
    assert len(told) == 3, "the team is told of the request and of both replies"


def test_the_answer_to_a_tokenless_reply_in_the_review_window_counts_in_the_tokenless_budget(tmp_path: Path) -> None:
    """Anyone can write as the customer with the order's subject tag: the "over to you" mail it causes in the
    review window is counted apart, so a stranger cannot spend the hour's mails that tell the customer
    their order was cancelled. Her own reply, with her token, counts as usual."""
    orders = Mailbox("orders@shop.example", "orders")
    context = open_context(Settings(home=tmp_path, data_dir=tmp_path / "var", mailboxes=(orders,)))
    with context.sessions.begin() as session:
        customer = upsert_person(session, "jean@client.example", name="Jean")
        request, requester = open_request(session, orders, "Logo", customer, "<order@c>")
        ensure_order(session, request, context.settings)
        session.flush()
        request.status = "delivered"
        number, token = request.id, mint_reply_token(context.settings.secret_key, "orders", request.id, requester.id)
    for to, subject, message_id in [("orders@shop.example", f"Re: [#{number}] Logo", "<forged@evil>"),
                                    (f"orders+{token}@shop.example", "Re: Logo", "<hers@c>")]:
        raw = (f"From: jean@client.example\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n\r\n"
               "Le logo est trop petit.\r\n").encode()
        assert process(context, store(context, raw, source="smtp", mailbox="orders@shop.example")).status == "processed"
    with context.sessions() as session:
        topics = [row.topic for row in session.scalars(select(Outbox).where(
            Outbox.template == "review_window.customer").order_by(Outbox.id))]
    assert topics == ["secretless", ""]


@pytest.mark.parametrize("together", [True, False], ids=["in one batch", "one by one"])
def test_mails_that_look_automatic_in_a_customers_name_do_not_silence_her_next_request(
        tmp_path: Path, together: bool) -> None:
    """Anyone can send list mail in a customer's name: the requests it opens count towards no flood of hers,
    so her real request after them is acknowledged and announced; the coordinators are told of the first
    ``requests_per_sender_hour`` automatic ones of the mailbox's hour, not of the rest."""
    context = open_context(Settings(home=tmp_path, data_dir=tmp_path / "var", requests_per_sender_hour=2,
                                    mailboxes=(Mailbox("support@shop.example"),)))
    with context.sessions.begin() as session:
        upsert_person(session, "camille@shop.example", role="coordinator")
    raws = [BULK.replace(b"news@shop-news.example", b"jean@client.example").replace(
        b"<n1@", f"<bulk{n}@".encode()).replace(b"{to}", b"support@shop.example") for n in range(3)]
    raws.append(RAW.replace(b"a@client.example", b"jean@client.example"))
    ids = [store(context, raw, source="smtp", mailbox="support@shop.example") for raw in raws]
    if together:
        process_batch(context, ids)
    else:
        for inbound_id in ids:
            process(context, inbound_id)
    with context.sessions() as session:
        sent = sorted((row.recipient, row.template) for row in session.scalars(select(Outbox)))
    assert sent == [("camille@shop.example", "new_request.coordinator")] * 3 + [
        ("jean@client.example", "acknowledgment.customer")], "two of the three automatic ones, and hers"
