"""Outgoing mail bytes: headers any mail client reads back exactly (CONTRACT §8)."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import MIMEPart
from email.policy import SMTP
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.outbound.compose import MailFile, UnsafeHeader, compose
from gateway.outbound.render import RenderedMail
from gateway.settings import Settings


def test_non_ascii_subjects_and_names_come_back_exactly_in_lines_under_78_characters(tmp_path: Path) -> None:
    subject = "Réponse à « Commande 12 n’est pas arrivée » — délai dépassé, très long sujet éèàç 日本語 " * 2
    settings = Settings(home=tmp_path, site_name="Boutique Élodie & Fils")
    raw = compose(settings, mailbox="support@shop.example", recipient="jean@client.example",
                  reply_to="support+abc@shop.example", rendered=RenderedMail(subject, "Bonjour", "<p>Bonjour</p>"),
                  message_id="<m1@shop.example>", number=12)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == f"[#12] {subject}"
    assert message["From"].addresses[0].display_name == "Boutique Élodie & Fils"
    head = raw.split(b"\r\n\r\n", 1)[0]
    subject_lines = head[head.index(b"Subject: "):head.index(b"\r\nMessage-ID:")].split(b"\r\n")
    assert head.isascii() and len(subject_lines) > 3 and max(len(line) for line in subject_lines) < 78
    words = b" ".join(subject_lines)[len(b"Subject: "):].split()
    assert all(re.fullmatch(rb"=\?utf-8\?q\?[A-Za-z0-9!*+/_=-]+\?=", word) for word in words), "RFC 2047 §5 (3)"
    assert not message.defects and all(not part.defects for part in message.walk())


@pytest.mark.parametrize("subject", [
    "=?utf-8?q?Remboursement_accept=C3=A9?= : votre commande", " un espace devant", "x" * 200,
    "mot " * 60, "a\u2028b\x85c\x0bd", "Très\tlong " * 30])
def test_subjects_a_reader_would_misread_come_back_exactly(tmp_path: Path, subject: str) -> None:
    """Text that reads as an encoded word, a leading space, a word longer than a line, Unicode line
    separators (written as spaces): the library folds and encodes them so they come back as they were."""
    raw = compose(Settings(home=tmp_path), mailbox="support@shop.example", recipient="jean@client.example",
                  reply_to="support+abc@shop.example", rendered=RenderedMail(subject, "Bonjour", "<p>Bonjour</p>"),
                  message_id="<m1@shop.example>")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == subject.translate(LINE_BREAKS_AS_SPACES)
    head = raw.split(b"\r\n\r\n", 1)[0]
    subject_lines = head[head.index(b"Subject: "):head.index(b"\r\nMessage-ID:")].split(b"\r\n")
    assert all(len(line) <= 78 for line in subject_lines), "RFC 5322 2.1.1"


@pytest.mark.parametrize("field, value", [
    ("recipient", "jean@client.example\r\nBcc: evil@attacker.example"), ("reply_to", "support+abc@shop.example\n"),
    ("subject", "Votre commande\r\nContent-Type: text/html"), ("recipient", "jean@client.example\x00")])
def test_a_header_value_that_would_end_its_line_is_never_written(tmp_path: Path, field: str, value: str) -> None:
    values = {"recipient": "jean@client.example", "reply_to": "support+abc@shop.example", "subject": "Commande"}
    values[field] = value
    with pytest.raises(UnsafeHeader, match="line break or a NUL"):
        compose(Settings(home=tmp_path), mailbox="support@shop.example", recipient=values["recipient"],
                reply_to=values["reply_to"], rendered=RenderedMail(values["subject"], "Bonjour", "<p>Bonjour</p>"),
                message_id="<m1@shop.example>", number=12)


# Line ends to str.splitlines other than CR and LF: written as spaces (the library's folder cuts there).
LINE_BREAKS_AS_SPACES = str.maketrans(dict.fromkeys("\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", " "))
_ADDRESS = st.from_regex(r"\A[a-z0-9éü._+-]{1,20}@[a-z0-9é-]{1,20}\.(example|fr)\Z").filter(
    lambda a: ".." not in a and not a.startswith(".") and ".@" not in a)
_LINE = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=120)


@settings(max_examples=300, deadline=None)
@given(recipient=_ADDRESS, subject=_LINE, site_name=_LINE.map(lambda name: " ".join(name.split())),
       number=st.integers(1, 10**9))
def test_every_composed_mail_reads_back_to_exactly_its_headers_with_one_to(
        recipient: str, subject: str, site_name: str, number: int) -> None:
    settings_ = Settings(home=Path("."), site_name=site_name)
    raw = compose(settings_, mailbox="support@shop.example", recipient=recipient,
                  reply_to="support+abc@shop.example", rendered=RenderedMail(subject, "Bonjour", "<p>Bonjour</p>"),
                  message_id="<m1@shop.example>", number=number)
    message = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)  # as RFC 6532 reads it
    assert [str(a.addr_spec) for a in message["To"].addresses] == [recipient]
    assert len(message.get_all("To")) == 1 and message.get_all("Cc") is None and message.get_all("Bcc") is None
    assert message["Subject"] == f"[#{number}] {subject}".translate(LINE_BREAKS_AS_SPACES)
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (site_name.translate(LINE_BREAKS_AS_SPACES),
                                                       "support@shop.example")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    head = raw.split(b"\r\n\r\n", 1)[0]
    subject_lines = head[head.index(b"Subject: "):head.index(b"\r\nMessage-ID:")].split(b"\r\n")
    assert all(len(line) <= 78 for line in subject_lines), "RFC 5322 2.1.1"
    assert message["Reply-To"] == "support+abc@shop.example" and message["Message-ID"] == "<m1@shop.example>"
    assert message.get_content_type() == "multipart/alternative"


def test_a_long_message_id_of_the_customer_is_written_as_it_is_so_clients_thread(tmp_path: Path) -> None:
    """Gmail's and Outlook's Message-IDs run past a folded line: encoded or folded inside, no client
    would match them to the customer's own mail."""
    root = "<CAKx8f3vQ9m2Zr7+YbN0k1TqW5uJc4d6hP-E3sLx9oA_gV2nB7w@mail.gmail.com>"
    raw = compose(Settings(home=tmp_path), mailbox="support@shop.example", recipient="jean@client.example",
                  reply_to="support+abc@shop.example", rendered=RenderedMail("Colis", "Bonjour", "<p>Bonjour</p>"),
                  message_id="<AM0PR01MB6123456789ABCDEF0123456789.eurprd01.prod.example@shop.example>",
                  number=12, root_message_id=root)
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert f"\r\nIn-Reply-To: {root}\r\n" in head and f"\r\nReferences: {root}\r\n" in head
    assert "\r\nMessage-ID: <AM0PR01MB6123456789ABCDEF0123456789.eurprd01.prod.example@shop.example>\r\n" in head
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["In-Reply-To"] == root and message["References"] == root


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=150), payload=st.binary(max_size=3000),
       content_type=st.sampled_from(["image/jpeg", "application/pdf", "text/plain", "message/rfc822", "bogus", ""]))
def test_an_attachment_is_written_as_the_email_librarys_own_set_content_writes_it(
        tmp_path_factory: pytest.TempPathFactory, name: str, payload: bytes, content_type: str) -> None:
    """The attachment's bytes are encoded by ``base64.encodebytes``, not by the library: the part must
    still be, byte for byte, what ``EmailMessage.set_content`` makes of the same file."""
    raw = compose(Settings(home=tmp_path_factory.getbasetemp()), mailbox="support@shop.example",
                  recipient="jean@client.example", reply_to="support+abc@shop.example",
                  rendered=RenderedMail("Livraison", "Bonjour", "<p>Bonjour</p>"), message_id="<m@shop.example>",
                  files=[MailFile(name, content_type, payload)])
    maintype, _, subtype = content_type.partition("/")
    if maintype not in ("image", "application"):
        maintype, subtype = "application", "octet-stream"
    library = MIMEPart(policy=SMTP)
    library.set_content(payload, maintype=maintype, subtype=subtype, disposition="attachment",
                        filename="".join(c for c in name if c.isprintable()) or "file")
    boundary = raw.rsplit(b"\r\n--", 1)[1].split(b"--", 1)[0]
    assert raw.split(b"--" + boundary + b"\r\n")[-1] == library.as_bytes() + b"--" + boundary + b"--\r\n"
