"""Automatic mail and delivery reports, on hand-written messages and on sisimai's 588 real reports.

The corpus is read where it lies (../shared/corpus/bounces/sisimai, see its
README); the scores of each check are computed by :func:`corpus_scores` and
printed, so ``pytest -s tests/test_classify.py`` shows where detection stands.
"""

from __future__ import annotations

import email
import json
import os
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parseaddr
from functools import cache
from pathlib import Path

import pytest

from gateway.mail.classify import Classification, classify, suppresses_auto_response

SISIMAI = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "bounces" / "sisimai"
# sisimai's own status codes for reasons no server states (RFC 3463 has no X.0.9xx):
# they come from its per-server tables, not from the message.
_SISIMAI_PSEUDO_STATUS = re.compile(r"^[245]\.0\.9\d\d$")


@dataclass
class Check:
    """How many cases of one kind came out as expected, and which did not."""

    passed: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)

    def record(self, name: str, ok: bool) -> None:
        self.total += 1
        self.passed += ok
        if not ok:
            self.misses.append(name)

    @property
    def share(self) -> float:
        return self.passed / self.total if self.total else 1.0


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw)


def classify_raw(raw: bytes) -> Classification:
    """As the pipeline calls it: the parsed message and its lowercased From address."""
    msg = parse(raw)
    address = parseaddr(str(msg.get("From", "")))[1].lower()
    return classify(msg, address or None)


@cache
def corpus_scores() -> dict[str, Check]:
    """Run every sisimai case through :func:`classify` and score each expectation."""
    expected: dict[str, dict[str, object]] = json.loads((SISIMAI / "expected.json").read_text())
    checks = {name: Check() for name in (
        "is_bounce", "auto_reply", "feedback_report", "not_bounce", "all_automatic",
        "status", "status_stated", "reply_code",
    )}
    for name, case in sorted(expected.items()):
        result = classify_raw((SISIMAI / name).read_bytes())
        is_bounce = bool(case["is_bounce"])
        checks["is_bounce"].record(name, (result.auto == "bounce") == is_bounce)
        if case.get("is_auto_reply"):
            checks["auto_reply"].record(name, result.auto == "auto-replied")
        if case.get("is_feedback_report"):
            checks["feedback_report"].record(name, result.feedback_report and result.auto != "bounce")
        if name.startswith("not/"):
            checks["not_bounce"].record(name, result.auto != "bounce")
        else:
            checks["all_automatic"].record(name, result.auto is not None)
        recipients = case.get("sisimai") or []
        assert isinstance(recipients, list)
        if not is_bounce or not recipients:
            continue
        first = recipients[0]
        got = result.failed_recipients[0] if result.failed_recipients else None
        if first["status"]:
            ok = got is not None and got.status == first["status"]
            checks["status"].record(name, ok)
            if not _SISIMAI_PSEUDO_STATUS.match(first["status"]):
                checks["status_stated"].record(name, ok)
        if first["reply_code"]:
            checks["reply_code"].record(name, got is not None and got.reply_code == first["reply_code"])
    return checks


def print_scores(checks: dict[str, Check]) -> None:
    for name, check in checks.items():
        print(f"{name:16} {check.passed:4}/{check.total:<4} {check.share:7.1%}")


corpus = pytest.mark.skipif(not SISIMAI.is_dir() and os.environ.get("CI") != "true",
                            reason="the shared sisimai corpus is not checked out beside the repository")


@corpus
def test_delivery_reports_are_told_apart_from_other_mail() -> None:
    checks = corpus_scores()
    print_scores(checks)
    assert checks["is_bounce"].total == 588
    assert checks["is_bounce"].share >= 0.98, checks["is_bounce"].misses


@corpus
def test_automatic_replies_in_the_corpus_are_auto_replied() -> None:
    check = corpus_scores()["auto_reply"]
    assert check.total == 5
    assert check.share == 1.0, check.misses


@corpus
def test_feedback_reports_are_complaints_not_bounces() -> None:
    check = corpus_scores()["feedback_report"]
    assert check.share >= 0.9, check.misses


@corpus
def test_ordinary_messages_of_the_corpus_are_not_bounces() -> None:
    check = corpus_scores()["not_bounce"]
    assert check.total == 2
    assert check.share == 1.0, check.misses


@corpus
def test_every_report_of_the_corpus_is_automatic_mail() -> None:
    check = corpus_scores()["all_automatic"]
    assert check.share >= 0.99, check.misses


@corpus
def test_the_first_failed_recipient_has_the_status_the_report_gives() -> None:
    checks = corpus_scores()
    assert checks["status_stated"].share >= 0.97, checks["status_stated"].misses
    assert checks["status"].share >= 0.75, checks["status"].misses


@corpus
def test_the_first_failed_recipient_has_the_smtp_reply_code() -> None:
    check = corpus_scores()["reply_code"]
    assert check.share >= 0.9, check.misses


# --- hand-written messages --------------------------------------------------------------


def message(headers: str, body: str = "Bonjour,\n\nma commande n'est pas arrivée.\n") -> bytes:
    """A small message: the given headers, then Content-Type and body."""
    return (headers.strip() + "\nContent-Type: text/plain; charset=utf-8\n\n" + body).encode()


CUSTOMER = """
From: Claire Martin <claire@example.org>
To: support@shop.example
Subject: Commande 1234 pas reçue
Message-ID: <abc@example.org>
"""


def test_a_plain_customer_mail_is_not_automatic() -> None:
    result = classify_raw(message(CUSTOMER))
    assert result == Classification(auto=None, reason="")


def test_outlook_mail_with_only_x_auto_response_suppress_is_not_automatic() -> None:
    raw = message(CUSTOMER + "X-Auto-Response-Suppress: All\nX-MS-Has-Attach: \n")
    assert classify_raw(raw).auto is None
    assert suppresses_auto_response(parse(raw))
    assert not suppresses_auto_response(parse(message(CUSTOMER)))


def test_a_french_out_of_office_is_an_auto_reply() -> None:
    raw = message(
        "From: Paul <paul@example.fr>\nTo: support@shop.example\n"
        "Subject: =?utf-8?q?R=C3=A9ponse_automatique=C2=A0=3A_Commande_1234?=\n",
        "Je suis absent jusqu'au 3 janvier.\n",
    )
    result = classify_raw(raw)
    assert result.auto == "auto-replied"
    assert "Réponse automatique" in result.reason


@pytest.mark.parametrize("subject", [
    "Out of Office: Order 1234", "Automatic reply: Order 1234", "Auto: Commande 1234",
    "Absence du bureau : Commande 1234", "Absent : Commande 1234", "Autoreply: Order 1234",
])
def test_out_of_office_subjects_in_french_and_english_are_auto_replies(subject: str) -> None:
    raw = message(f"From: paul@example.fr\nTo: support@shop.example\nSubject: {subject}\n")
    assert classify_raw(raw).auto == "auto-replied"


def test_a_customer_who_mentions_being_away_is_not_an_auto_reply() -> None:
    headers = "From: paul@example.fr\nTo: support@shop.example\nSubject: Re: absent demain, livrez lundi\n"
    raw = message(headers)
    assert classify_raw(raw).auto is None


def test_auto_submitted_tells_auto_replies_from_other_automatic_mail() -> None:
    replied = message(CUSTOMER + "Auto-Submitted: auto-replied\n")
    generated = message(CUSTOMER + "Auto-Submitted: auto-generated\n")
    person = message(CUSTOMER + "Auto-Submitted: no\n")
    assert classify_raw(replied) == Classification("auto-replied", "Auto-Submitted: auto-replied")
    assert classify_raw(generated).auto == "auto-generated"
    assert classify_raw(person).auto is None


def test_precedence_bulk_is_bulk() -> None:
    result = classify_raw(message(CUSTOMER + "Precedence: bulk\n"))
    assert (result.auto, result.reason) == ("bulk", "Precedence: bulk")


def test_precedence_auto_reply_is_an_auto_reply() -> None:
    assert classify_raw(message(CUSTOMER + "Precedence: auto_reply\n")).auto == "auto-replied"


def test_mailing_list_mail_is_bulk() -> None:
    assert classify_raw(message(CUSTOMER + "List-Id: Clients <clients.lists.example.org>\n")).auto == "bulk"
    assert classify_raw(message(CUSTOMER + "List-Unsubscribe: <mailto:u@example.org>\n")).auto == "bulk"


def test_an_empty_return_path_is_automatic() -> None:
    result = classify_raw(message("Return-Path: <>\n" + CUSTOMER))
    assert (result.auto, result.reason) == ("auto-generated", "Return-Path: <>")


def test_a_null_envelope_sender_is_automatic() -> None:
    assert classify(parse(message(CUSTOMER)), "").auto == "auto-generated"


def test_x_autoreply_headers_are_auto_replies() -> None:
    for header in ("X-Autoreply: yes", "X-Autorespond: vacation", "X-Autogenerated: Reply"):
        assert classify_raw(message(CUSTOMER + header + "\n")).auto == "auto-replied", header


def test_a_postmaster_notice_that_is_no_report_is_still_automatic() -> None:
    headers = "From: postmaster@example.org\nTo: support@shop.example\nSubject: Maintenance\n"
    raw = message(headers, "Hello.\n")
    assert classify_raw(raw).auto == "auto-generated"


EXIM_BOUNCE = """
Return-Path: <>
From: Mail Delivery System <Mailer-Daemon@mx.example.org>
To: support@shop.example
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied
"""
EXIM_BODY = """This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  Claire@Example.org
    host mx.example.org [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<claire@example.org>:
    550 5.1.1 <claire@example.org>: Recipient address rejected: User unknown

------ This is a copy of the message, including all the headers. ------

From: support@shop.example
To: claire@example.org
Subject: Votre demande #12
"""


def test_a_plain_text_bounce_wins_over_its_auto_submitted_header() -> None:
    result = classify_raw(message(EXIM_BOUNCE, EXIM_BODY))
    assert result.auto == "bounce"
    [recipient] = result.failed_recipients
    assert recipient.address == "claire@example.org"
    assert (recipient.status, recipient.reply_code) == ("5.1.1", "550")
    assert "User unknown" in recipient.diagnostic


def test_a_forwarded_bounce_is_a_person_asking_about_it() -> None:
    raw = message(
        "From: claire@example.org\nTo: support@shop.example\nSubject: Fwd: Mail delivery failed\n", EXIM_BODY
    )
    assert classify_raw(raw).auto is None


def test_a_customer_whose_parcel_could_not_be_delivered_is_not_a_bounce() -> None:
    raw = message(
        "From: claire@example.org\nTo: support@shop.example\nSubject: Delivery failure\n",
        "Hello, my parcel could not be delivered, the courier says the address is wrong.\n",
    )
    assert classify_raw(raw).auto is None


DSN = """From: MAILER-DAEMON@mx.example.net
To: support@shop.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; bob@example.net
Original-Recipient: rfc822;bob@example.net
Action: failed
Status: 5.0.0
Diagnostic-Code: smtp; 552 5.2.2 <bob@example.net>: mailbox full

Final-Recipient: rfc822; ann@example.net
Action: delivered
Status: 2.0.0

--b--
"""


def test_a_delivery_report_is_a_bounce_naming_only_the_failed_recipients() -> None:
    result = classify_raw(DSN.encode())
    assert (result.auto, result.reason) == ("bounce", "multipart/report delivery-status")
    assert [(r.address, r.status, r.reply_code) for r in result.failed_recipients] == [
        ("bob@example.net", "5.2.2", "552")
    ]


def test_a_report_of_successful_deliveries_is_not_a_bounce() -> None:
    raw = DSN.replace("Action: failed", "Action: delivered").replace("Status: 5.0.0", "Status: 2.0.0")
    result = classify_raw(raw.encode())
    assert result.auto == "auto-generated"
    assert result.failed_recipients == ()
