"""``gateway parse``: every field of CONTRACT §6, charsets, HTML-only mail, attachments, broken mail."""

from __future__ import annotations

import email
import hashlib
import io
import json
import pickle
import sys
import sysconfig
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cli.main import main
from gateway.cli.parsed import parsed_json
from gateway.mail.headers import POLICY
from gateway.mail.parse import ParsedMail, parse, strictly_one

STDLIB_EMAIL_DATA = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
FIELDS = ("from to cc subject message_id in_reply_to references date text reply_text html attachments auto "
          "tokens commands defects").split()


def run_parse(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["parse", str(path), "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("path", sorted(STDLIB_EMAIL_DATA.glob("msg_*.txt")), ids=lambda p: p.name)
def test_every_message_of_the_standard_librarys_test_data_parses(
        path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parsed = run_parse(path, capsys)
    assert set(FIELDS) <= set(parsed)


def test_the_standard_librarys_test_data_is_there() -> None:
    assert len(list(STDLIB_EMAIL_DATA.glob("msg_*.txt"))) > 40, f"no test data under {STDLIB_EMAIL_DATA}"


def test_parse_reads_standard_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    raw = b"From: a@b.example\r\nTo: support+abc234@shop.example\r\nSubject: hi\r\n\r\n#private\r\nhello\r\n"
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": io.BytesIO(raw)})())
    assert main(["parse", "-", "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["tokens"] == ["abc234"]
    assert parsed["commands"] == [{"name": "private", "args": ""}]


def test_an_unreadable_file_is_one_clear_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "/nonexistent/mail.eml"]) == 1
    assert capsys.readouterr().err.strip().startswith("gateway: cannot read /nonexistent/mail.eml")


def test_rfc2047_headers_and_addresses_are_decoded() -> None:
    parsed = parse(b"From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n"
                   b"To: =?utf-8?b?w4lsb2TDqWU=?= <eloe@x.example>, b@y.example\r\nCc: c@z.example\r\n"
                   b"Subject: =?utf-8?q?R=C3=A9clamation_colis?=\r\nDate: Mon, 3 Mar 2025 10:00:00 +0100\r\n"
                   b"Message-ID: <m1@x>\r\nIn-Reply-To: <m0@x>\r\nReferences: <a@x> <m0@x>\r\n\r\nbody\r\n")
    data = parse_json(parsed)
    assert data["from"] == {"address": "pirard@vm1.ulg.ac.be", "name": "André Pirard"}
    assert data["to"][0] == {"address": "eloe@x.example", "name": "Élodée"}
    assert [a["address"] for a in data["cc"]] == ["c@z.example"]
    assert data["subject"] == "Réclamation colis"
    assert data["date"] == "2025-03-03T10:00:00+01:00"
    assert (data["message_id"], data["in_reply_to"], data["references"]) == ("<m1@x>", "<m0@x>", ["<a@x>", "<m0@x>"])
    assert data["defects"] == []


def parse_json(parsed: ParsedMail) -> dict[str, object]:
    return parsed_json(parsed)


def test_windows_1252_mislabelled_as_iso_8859_1_reads_right() -> None:
    raw = (b"From: a@b.example\r\nSubject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n"
           b"C\x92est l\x92\xe9t\xe9 \x80 50\r\n")
    assert parse(raw).text.strip() == "C’est l’été € 50"


def test_iso_8859_15_and_unknown_charsets_do_not_break_parsing() -> None:
    euro = parse(b"Subject: x\r\nContent-Type: text/plain; charset=iso-8859-15\r\n\r\n\xa4 10\r\n")
    assert euro.text.strip() == "€ 10"
    unknown = parse(b"From: a@b.example\r\nSubject: x\r\nContent-Type: text/plain; charset=klingon\r\n\r\nhello\r\n")
    assert unknown.text.strip() == "hello"
    assert any("klingon" in defect for defect in unknown.defects)


def test_an_html_only_mail_becomes_readable_text() -> None:
    raw = (b"From: a@b.example\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<html><head><style>p{color:red}</style></head><body><p>Bonjour&nbsp;!</p>"
           b"<p>Voir <a href='https://shop.example/c/1'>ma commande</a></p></body></html>")
    parsed = parse(raw)
    assert "Bonjour" in parsed.text and "color" not in parsed.text
    assert "ma commande" in parsed.text and parsed.html is not None


def test_attachments_are_listed_with_size_and_sha256() -> None:
    raw = (b"From: a@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nvoir PJ\r\n"
           b"--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
           b"filename=\"=?utf-8?q?facture_n=C2=B01.pdf?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"JVBERi0xLjQK\r\n--B--\r\n")
    [attachment] = parse_json(parse(raw))["attachments"]  # type: ignore[misc]
    assert attachment == {"filename": "facture n°1.pdf", "content_type": "application/pdf", "size": 9,
                          "sha256": hashlib.sha256(b"%PDF-1.4\n").hexdigest()}


def test_garbage_never_raises_and_reports_defects() -> None:
    for raw in (b"", b"\x00\xff\xfe garbage", b"Content-Type: multipart/mixed\r\n\r\nno boundary",
                b"From: <>\r\nDate: not a date\r\n\r\n"):
        parsed = parse(raw)
        assert parsed.defects, raw


def test_a_parsed_mail_is_plain_data_another_process_can_take() -> None:
    raw = (b"From: a@b.example\r\nSubject: Fwd: commande\r\nX-Auto-Response-Suppress: All\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nvoir\r\n"
           b"--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d.example\r\nSubject: commande\r\n\r\nici\r\n--B--\r\n")
    parsed = parse(raw)
    assert parsed.embeds_message and parsed.suppresses_auto_response
    assert pickle.loads(pickle.dumps(parsed)) == parsed
    plain = parse(b"From: a@b.example\r\nSubject: question\r\n\r\nBonjour\r\n")
    assert not plain.embeds_message and not plain.suppresses_auto_response


_FROMS = ["Alice <alice@shop.example>", "<alice@shop.example>@attacker.example", "alice@shop.example",
          "<alice@shop.example>", "Alice <alice@shop.example", "alice@shop.example>", "J. Doe <j.doe@client.example>",
          "a@b.example, c@d.example", "Bob <bob@x.example> <alice@shop.example>", "alice@shop.example <bob@x.example>",
          '"Alice, Shop" <alice@shop.example>', "=?utf-8?q?Z=C3=A9?= <z@c.example>", "Jean (work) <j@c.example>",
          "a.@b.example", ".a@b.example", "a..b@c.example", "a@b..example", "a@b.example.", "a@-b.example",
          "Alice\t<alice@shop.example>  ", " alice@shop.example", "Ali ce <alice@shop.example>",
          "<alice@shop.example> Alice", "alice@shop", "Alice <alice@shop.example> (comment)",
          "Team: alice@shop.example;", "=?utf-8?q?a?=<a@b.example>", "A\x01B <a@b.example>", "A\x7fB <a@b.example>",
          "A\x85B <a@b.example>"]


def _short_way_agrees(value: str) -> None:
    """The From as the message's parser hands it over (a line break such as \\x0b may cut it), read the
    short way and the strict way: the same answer."""
    raw = f"From: {value}\r\n\r\nx\r\n".encode()
    parsed, header = parse(raw), email.message_from_bytes(raw, policy=POLICY).get("From")
    if parsed.sender is not None and header is not None:
        assert parsed.sender_unambiguous == strictly_one(str(header), parsed.sender.address), value


@pytest.mark.parametrize("value", _FROMS)
def test_the_short_way_reads_a_from_as_the_strict_parser_does(value: str) -> None:
    _short_way_agrees(value)


@settings(max_examples=500, deadline=None)
@given(st.from_regex(r"\A[ \t]?([A-Za-zé0-9.\"(),'=?_:;\x01\x0b\x7f\x85 -]{0,12}[ \t]?<)?"
                     r"[a-z0-9.'+-]{1,6}@[a-z.-]{1,8}(>[ \t]?)?\Z"))
def test_the_short_way_agrees_with_the_strict_parser_on_any_from(value: str) -> None:
    _short_way_agrees(value)


@pytest.mark.parametrize("raw", [
    b"From: a@b.example\r\nContent-Type: text/plain; charset=\"ut\x00f\"\r\n\r\nCaf\xe9\r\n",
    b"From: a@b.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=\"x\x00y\"\r\n\r\nCaf\xe9\r\n--b--\r\n",
    b"From: a@b.example\r\nContent-Type: text/plain; charset*=us-ascii''a%00b\r\n\r\nCaf\xe9\r\n",
], ids=["body", "report part", "RFC 2231"])
def test_a_charset_named_with_a_nul_is_read_as_undeclared(raw: bytes) -> None:
    """The standard library's codec lookup raises ValueError for such a name (found by the hostile bytes test)."""
    parsed = parse(raw)
    assert parsed.text.strip() == "Café"
    assert "charset named with a NUL" in parsed.defects


def test_an_encoded_word_in_a_charset_named_with_a_nul_is_an_unknown_charset() -> None:
    parsed = parse(b"From: =?a\x00b?q?Jean?= <a@b.example>\r\nSubject: =?ut\x00f-8?q?Caf=C3=A9?=\r\n\r\nx\r\n")
    assert parsed.sender is not None and parsed.sender.address == "a@b.example"
    assert "Caf" in parsed.subject


_FORWARDS = {
    "gmail-fr": ("Subject: Fwd: Facture\r\n\r\nVoir ci-dessous.\r\n\r\n---------- Message transféré ---------\r\n"
                 "De : Jean Dupont <jean@client.example>\r\nDate: lun. 7 déc. 2026 à 10:02\r\nSubject: Facture\r\n"
                 "To: <alice@shop.example>\r\n\r\n\r\nBonjour.\r\n", "Facture", "Voir ci-dessous."),
    "outlook-fr": ("Subject: TR: Facture\r\n\r\nPour info.\r\n\r\n________________________________\r\n"
                   "De : Jean Dupont <jean@client.example>\r\nEnvoyé : lundi 7 décembre 2026 10:02\r\n"
                   "À : Alice <alice@shop.example>\r\nObjet : Facture\r\n\r\nBonjour.\r\n", "Facture", "Pour info."),
    "outlook-old": ("Subject: FW: Facture\r\n\r\n-----Original Message-----\r\n"
                    "From: Jean Dupont [mailto:jean@client.example]\r\nSent: Monday, December 7, 2026 10:02 AM\r\n"
                    "To: Alice\r\nSubject: Facture\r\n\r\nBonjour.\r\n", "Facture", ""),
    "apple-fr": ("Subject: Fwd: Facture\r\n\r\n\r\nDébut du message réexpédié :\r\n\r\n"
                 "De: Jean Dupont <jean@client.example>\r\nObjet: Facture\r\nDate: 7 décembre 2026 à 10:02:00 UTC+1\r\n"
                 "À: alice@shop.example\r\n\r\nBonjour.\r\n", "Facture", ""),
    "apple-en": ("Subject: Fwd: Facture\r\n\r\nSee below.\r\n\r\nBegin forwarded message:\r\n\r\n"
                 "From: Jean Dupont <jean@client.example>\r\nSubject: Facture\r\n"
                 "Date: December 7, 2026 at 10:02:00 GMT+1\r\nTo: alice@shop.example\r\n\r\nBonjour.\r\n",
                 "Facture", "See below."),
    "thunderbird": ("Subject: Fwd: Facture\r\n\r\n\r\n-------- Forwarded Message --------\r\nSubject: \tFacture\r\n"
                    "Date: \tMon, 7 Dec 2026 10:02:00 +0100\r\nFrom: \tJean Dupont <jean@client.example>\r\n"
                    "To: \talice@shop.example\r\n\r\nBonjour.\r\n", "Facture", ""),
}


@pytest.mark.parametrize("client", sorted(_FORWARDS))
def test_a_forward_is_read_back_whatever_client_wrote_it(client: str) -> None:
    body, subject, note = _FORWARDS[client]
    raw = ("From: Alice <alice@shop.example>\r\nTo: support@shop.example\r\nContent-Type: text/plain; charset=utf-8\r\n"
           + body).encode()
    original = parse(raw).forwarded
    assert original is not None
    assert (original.address, original.name, original.subject, original.text, original.note) == (
        "jean@client.example", "Jean Dupont", subject, "Bonjour.", note)


def test_a_forward_of_an_html_only_mail_as_an_attachment_keeps_the_forwarders_words() -> None:
    """The original's text comes from its HTML, so it appears nowhere in the forward's plain text: the
    note is the text of the forward's own parts, not what comes before the original's text."""
    raw = (b"From: Alice <alice@shop.example>\r\nTo: support@shop.example\r\nSubject: TR: Facture\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n#assign bob@shop.example\r\nMarge 40 %.\r\n--b1\r\n"
           b"Content-Type: message/rfc822\r\n\r\nFrom: Jean Dupont <jean@client.example>\r\nSubject: Facture\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Bonjour, facture en double.</p>\r\n"
           b"--b1--\r\n")
    original = parse(raw).forwarded
    assert original is not None and original.attached
    assert (original.address, original.text) == ("jean@client.example", "Bonjour, facture en double.")
    assert original.note == "#assign bob@shop.example\nMarge 40 %."


def test_a_reply_quoting_headers_is_not_a_forward() -> None:
    raw = (b"From: Alice <alice@shop.example>\r\nSubject: Re: Facture\r\n\r\nOui.\r\n\r\n"
           b"-----Original Message-----\r\nFrom: Jean <jean@client.example>\r\nSubject: Facture\r\n\r\nBonjour.\r\n")
    assert parse(raw).forwarded is None
    assert parse(b"From: a@b.example\r\nSubject: Fwd: rien\r\n\r\nPas de message ici.\r\n").forwarded is None


def test_a_hostile_forward_costs_its_length_once_and_names_no_one() -> None:
    """A From line of 600 KB with no address, and 200,000 separators: each read once (a quadratic reading
    took minutes on these), and neither is a forward of anyone."""
    separator = b"Subject: Fwd: x\r\n\r\n---------- Forwarded message ---------\r\n"
    long_from = separator + b"From: " + b"a" * 600_000 + b"\r\n\r\nx\r\n"
    separators = b"Subject: Fwd: x\r\n\r\n" + b"__________\r\n" * 200_000
    forged = (b"Subject: Fwd: x\r\n\r\n---------- Forwarded message ---------\r\nFrom: Jean <"
              + b"j" * 400 + b"@client.example>\r\n\r\nBonjour.\r\n")
    for body in (long_from, separators, forged):
        assert parse(b"From: alice@shop.example\r\n" + body).forwarded is None


def test_a_backslash_beside_an_encoded_word_is_text_not_an_escape() -> None:
    """A Windows path after an encoded word in a Subject: the standard library hands that text back as
    raw-unicode-escape bytes, where ``\\u`` reads as a broken escape."""
    parsed = parse(b"From: a@b.example\r\nSubject: =?utf-8?q?caf=C3=A9?= C:\\users\\x\r\n\r\nBonjour\r\n")
    assert parsed.subject == "café C:\\users\\x"


def test_a_subject_folded_after_an_encoded_word_keeps_its_space() -> None:
    """Python's email package and Thunderbird fold a long subject after an encoded word: the fold's
    whitespace is the space between two words (RFC 5322 2.2.3), and between two encoded words it is none."""
    folded = b"From: a@b.example\r\nSubject: Nouvelle =?utf-8?q?Canap=C3=A9?=\r\n d'angle en lin\r\n\r\nx\r\n"
    assert parse(folded).subject == "Nouvelle Canapé d'angle en lin"
    words = b"From: a@b.example\r\nSubject: =?utf-8?q?Canap=C3=A9?=\r\n =?utf-8?q?_d=27angle?=\r\n\r\nx\r\n"
    assert parse(words).subject == "Canapé d'angle"
    bare_cr = b"From: a@b.example\r\nSubject: Nouvelle =?utf-8?q?Canap=C3=A9?=\r d'angle\r\n\r\nx\r\n"
    assert parse(bare_cr).subject == "Nouvelle Canapé d'angle", "a fold with a bare CR, as old Macs wrote"
