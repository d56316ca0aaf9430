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
        "is_bounce", "delays", "auto_reply", "feedback_report", "not_bounce", "all_automatic",
        "status", "status_stated", "reply_code",
    )}
    for name, case in sorted(expected.items()):
        raw = (SISIMAI / name).read_bytes()
        result = classify_raw(raw)
        is_bounce = bool(case["is_bounce"])
        # sisimai counts a delay notice as a (soft) bounce; the gateway tells it apart: not a bounce
        if is_bounce and says_delayed(raw):
            told_apart = (result.auto == "auto-generated" and result.delivery is not None
                          and result.delivery.kind == "delayed")
            checks["delays"].record(name, told_apart)
            checks["is_bounce"].record(name, told_apart)
        else:
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
        got = result.delivery.recipients[0] if result.delivery and result.delivery.recipients else None
        if first["status"]:
            ok = got is not None and got.status == first["status"]
            checks["status"].record(name, ok)
            if not _SISIMAI_PSEUDO_STATUS.match(first["status"]):
                checks["status_stated"].record(name, ok)
        if first["reply_code"]:
            checks["reply_code"].record(name, got is not None and got.reply_code == first["reply_code"])
    return checks


def says_delayed(raw: bytes) -> bool:
    """What the report itself says, read without the gateway's code: every DSN ``Action`` field is
    ``delayed``, or (no such field) its Subject speaks of a delay."""
    actions = {action.lower() for action in re.findall(rb"(?im)^Action:[ \t]*(\w+)", raw)}
    if actions:
        return actions == {b"delayed"}
    return re.search(rb"(?im)^Subject:.*\bdelay", raw.split(b"\n\n", 1)[0]) is not None


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
    # Reached: 587/588. Left: lhost-sendmail-14, a person forwarding a report ("Fwd: Returned mail"),
    # which the gateway takes for a person asking about it, on purpose.
    assert checks["is_bounce"].share >= 0.995, checks["is_bounce"].misses


@corpus
def test_delay_notices_are_told_apart_from_failures() -> None:
    """A server still trying is not a failing address: 22 of sisimai's reports are delays."""
    check = corpus_scores()["delays"]
    assert check.total == 22
    assert check.share == 1.0, check.misses


@corpus
def test_automatic_replies_in_the_corpus_are_auto_replied() -> None:
    check = corpus_scores()["auto_reply"]
    assert check.total == 5
    assert check.share == 1.0, check.misses


@corpus
def test_feedback_reports_are_complaints_not_bounces() -> None:
    check = corpus_scores()["feedback_report"]
    assert check.total == 15
    assert check.share == 1.0, check.misses


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


# --- delivery reports told apart: failed, delayed, delivered (written here, in our own words) ---------


def dsn(action: str, status: str, *, diagnostic: str = "", extra: str = "") -> bytes:
    """A standard report from mx.example.net about our mail to bob@example.net."""
    diagnostic_line = f"Diagnostic-Code: smtp; {diagnostic}\n" if diagnostic else ""
    return f"""From: MAILER-DAEMON@mx.example.net
To: support@shop.example
Subject: Delivery Status Notification
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="r"

--r
Content-Type: text/plain

This is the mail system at host mx.example.net.

--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Mon, 5 Jan 2026 10:00:00 +0100

Final-Recipient: rfc822; bob@example.net
Action: {action}
Status: {status}
{diagnostic_line}{extra}
--r--
""".encode()


def test_a_delayed_report_is_automatic_mail_not_a_bounce() -> None:
    result = classify_raw(dsn("delayed", "4.4.1", diagnostic="connect to mx.example.net: Connection timed out"))
    assert result.auto == "auto-generated" and result.failed_recipients == ()
    assert result.delivery is not None
    assert result.delivery.as_json() == {
        "kind": "delayed", "reporting_mta": "mx.example.net",
        "recipients": [{"address": "bob@example.net", "status": "4.4.1", "action": "delayed",
                        "diagnostic": "connect to mx.example.net: Connection timed out", "permanent": False}]}


def test_a_failure_for_good_is_a_permanent_bounce_and_one_that_may_pass_is_not_permanent() -> None:
    gone = classify_raw(dsn("failed", "5.1.1", diagnostic="550 5.1.1 <bob@example.net>: User unknown"))
    full = classify_raw(dsn("failed", "4.2.2", diagnostic="452 4.2.2 Mailbox full, retries ran out"))
    assert gone.auto == full.auto == "bounce"
    assert [(r.status, r.permanent) for r in gone.failed_recipients] == [("5.1.1", True)]
    assert [(r.status, r.permanent) for r in full.failed_recipients] == [("4.2.2", False)]


def test_a_report_naming_a_failure_and_a_delay_is_a_failure_that_lists_both() -> None:
    extra = "\nFinal-Recipient: rfc822; ann@example.net\nAction: delayed\nStatus: 4.4.7\n"
    result = classify_raw(dsn("failed", "5.2.1", diagnostic="550 5.2.1 Mailbox disabled", extra=extra))
    assert result.auto == "bounce" and result.delivery is not None and result.delivery.kind == "failed"
    assert [(r.address, r.action, r.permanent) for r in result.delivery.recipients] == [
        ("bob@example.net", "failed", True), ("ann@example.net", "delayed", False)]


@pytest.mark.parametrize("action", ["delivered", "relayed", "expanded"])
def test_a_report_of_success_says_which(action: str) -> None:
    result = classify_raw(dsn(action, "2.0.0"))
    assert result.auto == "auto-generated" and result.delivery is not None
    assert result.delivery.kind == action and result.failed_recipients == ()


DAEMON = "From: Mail Delivery System <MAILER-DAEMON@relay.example.org>\nTo: support@shop.example\n"
DELAY_NOTICES = {
    "exim": (DAEMON + "Subject: Warning: message 1tQx7Z-0004Ab-2C delayed 24 hours\n",
             "This message was created automatically by mail delivery software.\n\n"
             "A message that you sent has not yet been delivered to one or more of its recipients after more\n"
             "than 24 hours on the queue on relay.example.org.\n\n"
             "  bob@example.net\n"
             "    Delay reason: SMTP error from remote mail server after RCPT TO:<bob@example.net>:\n"
             "    451 4.7.1 Greylisted, please try again later\n\n"
             "No action is required on your part. Delivery attempts will continue for some time, and this\n"
             "warning may be repeated at intervals if the message remains undelivered. Eventually the mail\n"
             "delivery software will give up, and when that happens, the message will be returned to you.\n"),
    "gmail": ("From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: support@shop.example\n"
              "Subject: Delivery Status Notification (Delay)\n",
              "** Delivery incomplete **\n\nThere was a temporary problem delivering your message to "
              "bob@example.net. Gmail will retry for 46 more hours. You'll be notified if the delivery fails "
              "permanently.\n\nThe response was:\n\n421 4.7.0 Try again later, closing connection.\n"),
    "microsoft": ("From: postmaster@outlook.example\nTo: support@shop.example\n"
                  "Subject: Delivery delayed:Votre demande #12\n",
                  "Delivery is delayed to these recipients or groups:\n\nbob@example.net\n\n"
                  "Subject: Votre demande #12\n\nThis message hasn't been delivered yet. Delivery will continue "
                  "to be attempted.\n\nThe server will keep trying to deliver this message for the next 1 days, "
                  "19 hours and 52 minutes. You'll be notified if the message can't be delivered by that time.\n"),
    "sendmail": (DAEMON + "Subject: Warning: could not send message for past 4 hours\n",
                 "    **********************************************\n"
                 "    **      THIS IS A WARNING MESSAGE ONLY      **\n"
                 "    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n"
                 "    **********************************************\n\n"
                 "The original message was received at Mon, 5 Jan 2026 10:00:00 +0100\n\n"
                 "   ----- Transcript of session follows -----\n"
                 "<bob@example.net>... Deferred: Connection timed out with mx.example.net.\n"
                 "Warning: message still undelivered after 4 hours\n"
                 "Will keep trying until message is 5 days old\n"),
    "french": (DAEMON + "Subject: Remise différée : Votre demande #12\n",
               "Ce message n'a pas encore pu être remis à bob@example.net. Le serveur de messagerie fera de "
               "nouvelles tentatives pendant 48 heures.\n\nDiagnostic : 450 4.2.1 Mailbox busy\n"),
}


@pytest.mark.parametrize("name", DELAY_NOTICES)
def test_a_plain_text_delay_notice_is_not_a_bounce(name: str) -> None:
    headers, body = DELAY_NOTICES[name]
    result = classify_raw(message(headers, body))
    assert result.auto == "auto-generated", result.reason
    assert result.delivery is not None and result.delivery.kind == "delayed"
    assert [(r.address, r.permanent) for r in result.delivery.recipients] in ([("bob@example.net", False)], [])


OLD_BOUNCES = {
    "sendmail permanent fatal errors": (
        DAEMON + "Subject: Returned mail: see transcript for details\n",
        "The original message was received at Mon, 5 Jan 2026 10:00:00 +0100\n"
        "from shop.example [192.0.2.10]\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n"
        "<bob@example.net>\n    (reason: 550 5.1.1 <bob@example.net>... User unknown)\n\n"
        "   ----- Transcript of session follows -----\n"
        "... while talking to mx.example.net.:\n>>> RCPT To:<bob@example.net>\n"
        "<<< 550 5.1.1 <bob@example.net>... User unknown\n", "5.1.1"),
    "domino could not be delivered to the following recipients": (
        "From: Postmaster <postmaster@notes.example.net>\nTo: support@shop.example\n"
        "Subject: DELIVERY FAILURE: User bob (bob@example.net) not listed in Domino Directory\n",
        "Your message\n\n  Subject: Votre demande #12\n\n"
        "was not delivered to:\n\n  bob@example.net\n\n"
        "because:\n\n  User bob (bob@example.net) not listed in Domino Directory\n", ""),
    "microsoft relay": (
        "From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.net>\n"
        "To: support@shop.example\nSubject: Undeliverable: Votre demande #12\nReturn-Path: <>\n",
        "Delivery has failed to these recipients or groups:\n\nbob@example.net\n"
        "The email address you entered couldn't be found.\n\n"
        "Diagnostic information for administrators:\n\nGenerating server: mail.example.net\n\n"
        "bob@example.net\nRemote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not "
        "found by SMTP address lookup'\n", "5.1.10"),
    "university relay": (
        "From: Mail Delivery Subsystem <MAILER-DAEMON@relay.univ.example.edu>\nTo: support@shop.example\n"
        "Subject: Your message could not be delivered\n",
        "Your message could not be delivered to the following recipients:\n\n"
        "     bob@example.net\n          Unrouteable address: host lookup did not complete (permanent error)\n"
        "          550 5.4.4 Unable to route\n\nThe message has been returned to the sender.\n", "5.4.4"),
}


@pytest.mark.parametrize("name", OLD_BOUNCES)
def test_plain_text_bounces_of_older_servers_name_the_failed_recipient(name: str) -> None:
    headers, body, status = OLD_BOUNCES[name]
    result = classify_raw(message(headers, body))
    assert result.auto == "bounce", result.reason
    assert result.delivery is not None and result.delivery.kind == "failed"
    [recipient] = result.failed_recipients
    assert recipient.address == "bob@example.net" and recipient.status == status


def test_a_transcript_gives_the_refused_command_not_the_accepted_ones() -> None:
    body = ("Transcript of session follows.\n\n Out: 220 mx.example.net ESMTP\n In:  MAIL FROM:<support@shop.example>\n"
            " Out: 250 2.1.0 Ok\n In:  RCPT TO:<bob@example.net>\n Out: 250 2.1.5 Ok\n In:  DATA\n"
            " Out: 451 4.3.0 Error: queue file write error\n In:  QUIT\n Out: 221 2.0.0 Bye\n")
    result = classify_raw(message(DAEMON + "Subject: Postfix SMTP server: errors from shop.example\n", body))
    assert result.auto == "bounce"
    [recipient] = result.failed_recipients
    assert (recipient.address, recipient.status, recipient.reply_code) == ("bob@example.net", "4.3.0", "451")


def test_a_mailing_list_refusing_the_post_is_a_bounce() -> None:
    headers = ("From: shop-list-admin@lists.example.org\nTo: support@shop.example\n"
               "Subject: You are not a member of shop-list\nX-MLServer: fml [fml 4.0.3]\n"
               "List-Post: <mailto:shop-list@lists.example.org>\n")
    result = classify_raw(message(headers, "Only members may post to this list.\n"))
    assert result.auto == "bounce", result.reason


def test_a_mailing_lists_ordinary_post_is_bulk_not_a_bounce() -> None:
    headers = ("From: ann@example.org\nTo: shop-list@lists.example.org\nSubject: Who is a member of the club?\n"
               "List-Id: <shop-list.lists.example.org>\n")
    assert classify_raw(message(headers, "Hello, are you a member?\n")).auto == "bulk"


ARF_ATTACHED = """From: abuse-reports@isp.example
To: support@shop.example
Subject: FW: Abuse report
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: text/plain

A complaint about mail from your domain, attached.

--outer
Content-Type: message/rfc822

From: feedback@isp.example
To: support@shop.example
Subject: Complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="inner"

--inner
Content-Type: text/plain

This is an email abuse report.

--inner
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ISP-FBL/1.0
Version: 1

--inner--

--outer--
"""


def test_a_feedback_report_forwarded_as_an_attachment_is_a_complaint() -> None:
    result = classify_raw(ARF_ATTACHED.encode())
    assert result.feedback_report and result.auto == "auto-generated"


def test_a_feedback_report_whose_outer_part_is_not_a_report_is_a_complaint() -> None:
    raw = ARF_ATTACHED.replace("multipart/report; report-type=feedback-report;", "multipart/mixed;")
    result = classify_raw(raw.encode())
    assert result.feedback_report and result.auto != "bounce"


def test_apple_mails_unsubscribe_request_is_a_feedback_report() -> None:
    headers = ("From: ann@icloud.example\nTo: support@shop.example\nSubject: unsubscribe\n"
               "Auto-Submitted: auto-replied\nX-Apple-Unsubscribe: true\n")
    result = classify_raw(message(headers, "Apple Mail sent this email to unsubscribe from the message.\n"))
    assert result.feedback_report and result.auto == "auto-generated"


# --- what a shop's mail says about late parcels is never a delay notice (found by a review) ---------------


RETURNED_COPY = ("------ This is a copy of the message, including all the headers. ------\n\n"
                 "From: support@shop.example\nTo: bob@example.net\nSubject: Re: [#12] Order delayed\n\n"
                 "Your delivery has been delayed by the carrier; it will be retried tomorrow.\n")


@pytest.mark.parametrize("subject, body", [
    ("Mail delivery failed: returning message to sender",
     "This message was created automatically by mail delivery software.\n\nA message that you sent could not "
     "be delivered to one or more of its recipients. This is a permanent error.\n\n  bob@example.net\n"
     "    SMTP error from remote mail server after RCPT TO:<bob@example.net>:\n    550 5.1.1 User unknown\n\n"
     + RETURNED_COPY),
    ("Undeliverable: Re: [#12] Order delayed",
     "Delivery has failed to these recipients or groups:\n\nbob@example.net\n\n"
     "Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'\n"),
    ("Mail delivery failed: Re: [#12] Votre livraison en retard",
     "A message that you sent could not be delivered.\n\n  bob@example.net\n    550 5.1.1 No such user\n"),
], ids=["returned-copy-speaks-of-a-delay", "our-subject-says-delayed", "notre-sujet-dit-retard"])
def test_a_failure_whose_quoted_subject_or_copy_speaks_of_a_delay_is_a_failure(subject: str, body: str) -> None:
    result = classify_raw(message(DAEMON + f"Subject: {subject}\n", body))
    assert result.auto == "bounce" and result.delivery is not None and result.delivery.kind == "failed"
    assert [(r.address, r.status, r.permanent) for r in result.failed_recipients] == [
        ("bob@example.net", "5.1.1", True)]


@pytest.mark.parametrize("subject, body", [
    ("Delivery delayed", "Hello, my order from 4.12.23 has not been delivered yet. Where is it?\n"),
    ("Delivery delayed", "My parcel has been delayed. I chose express mail delivery!\n"),
    ("Retard de livraison", "Bonjour, ma commande n'a pas encore été livrée, nouvelle tentative demain ?\n"),
])
def test_a_customer_writing_about_a_late_delivery_is_a_person(subject: str, body: str) -> None:
    result = classify_raw(message(f"From: Claire <claire@example.org>\nTo: support@shop.example\n"
                                  f"Subject: {subject}\n", body))
    assert (result.auto, result.delivery) == (None, None)


@pytest.mark.parametrize("headers", [
    "List-Post: <mailto:club@lists.example.org>\nSubject: Re: [#12] Message refused at checkout\n",
    "List-Id: <club.lists.example.org>\nSubject: Not a member yet - discount?\n",
    "Mailing-List: contact club-help@lists.example.org\nSubject: Why was my message rejected?\n",
])
def test_a_members_post_about_refusals_is_not_a_list_refusing_it(headers: str) -> None:
    result = classify_raw(message("From: ann@example.org\nTo: support@shop.example\n" + headers))
    assert result.auto != "bounce" and result.delivery is None


def test_a_report_naming_only_our_own_address_or_message_id_names_no_recipient() -> None:
    body = ("The message sent by support@shop.example, <req-12.abc@shop.example>, could not be delivered:\n"
            "550 5.7.1 Message rejected as spam\n")
    result = classify_raw(message(DAEMON + "Subject: Delivery failure\n", body))
    assert result.auto == "bounce"
    assert [r.address for r in result.failed_recipients] == [""], "never one of ours, never marked failing"


def test_a_reporting_mta_field_left_empty_names_none() -> None:
    result = classify_raw(dsn("failed", "5.1.1").replace(b"Reporting-MTA: dns; mx.example.net", b"Reporting-MTA: dns;"))
    assert result.delivery is not None and result.delivery.reporting_mta == ""
