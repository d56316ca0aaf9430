"""The gateway's own DKIM check, when it is the MX (CONTRACT §4): dkimpy verifies the signature against
a key that a table stands in for the DNS, and only a whole, aligned signature of From authenticates."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import tempfile
from pathlib import Path

import dkim
import pytest
from sqlalchemy import select

from gateway.context import Context, open_context
from gateway.helpdesk import upsert_person
from gateway.intake.admission import store
from gateway.mail.authentication import dkim_verified
from gateway.models import Comment, Request
from gateway.pipeline.process import process
from gateway.settings import Mailbox, Settings

ALICE = "alice@shop.example"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A fresh RSA key made by openssl: (the PEM private key, its DNS TXT record)."""
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "private.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout
    return private.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def _dns(record: bytes, published: str = "s1._domainkey.shop.example."):  # type: ignore[no-untyped-def]
    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        return record if name.decode() == published else None
    return txt


def _message(sender: str = f"Alice <{ALICE}>", body: str = "#label urgent\r\nJe m'en occupe.\r\n") -> bytes:
    return (f"From: {sender}\r\nTo: support@shop.example\r\nSubject: Re: [#1] Question\r\n"
            f"Message-ID: <signed@shop.example>\r\n\r\n{body}").encode()


def _signed(private: bytes, message: bytes, domain: str = "shop.example", **options: object) -> bytes:
    signature = dkim.sign(message, b"s1", domain.encode(), private, include_headers=[b"from", b"to", b"subject"],
                          **options)  # type: ignore[arg-type]
    return signature + message


def _signed_without_from(private: bytes, message: bytes) -> bytes:
    """A signature of the Subject alone (RFC 6376 3.7, simple canonicalisation), which dkimpy's own
    signer refuses to write: openssl signs the hash."""
    head, _, body = message.partition(b"\r\n\r\n")
    [subject] = [line + b"\r\n" for line in head.split(b"\r\n") if line.lower().startswith(b"subject:")]
    body_hash = base64.b64encode(hashlib.sha256(body.rstrip(b"\r\n") + b"\r\n").digest())
    header = (b"DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=shop.example; s=s1; h=subject; bh="
              + body_hash + b"; b=")
    with tempfile.NamedTemporaryFile() as key:
        key.write(private)
        key.flush()
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key.name], input=subject + header,
                                   check=True, capture_output=True).stdout
    return header + base64.b64encode(signature) + b"\r\n" + message


def test_a_whole_signature_of_the_from_domain_authenticates(keys: tuple[bytes, bytes]) -> None:
    private, record = keys
    assert dkim_verified(_signed(private, _message()), ALICE, _dns(record)) == \
        "dkim=pass header.d=shop.example (gateway)"


def test_a_parent_domain_signature_is_aligned(keys: tuple[bytes, bytes]) -> None:
    private, record = keys
    signed = _signed(private, _message("Alice <alice@eu.shop.example>"))
    assert dkim_verified(signed, "alice@eu.shop.example", _dns(record)) is not None


@pytest.mark.parametrize("case", ["edited body", "edited From", "another domain's key", "no key published",
                                  "signed by another domain", "a body length (l=)", "From not signed",
                                  "appended below the signed part"])
def test_anything_else_does_not(keys: tuple[bytes, bytes], case: str) -> None:
    private, record = keys
    txt = _dns(record)
    signed = _signed(private, _message())
    if case == "edited body":
        signed = signed.replace(b"Je m'en", b"Je ne m'en")
    elif case == "edited From":
        signed = signed.replace(b"From: Alice <alice@", b"From: Alice <bob@")
    elif case == "another domain's key":
        txt = _dns(record, "s1._domainkey.attacker.example.")
        signed = _signed(private, _message(), domain="attacker.example")
    elif case == "no key published":
        txt = _dns(b"")
    elif case == "signed by another domain":
        txt = _dns(record, "s1._domainkey.attacker.example.")
        signed = _signed(private, _message(), domain="attacker.example")
        assert dkim.verify(signed, dnsfunc=txt), "a good signature, of the wrong domain"
    elif case == "a body length (l=)":
        signed = _signed(private, _message(), length=True)
        assert dkim.verify(signed, dnsfunc=txt), "a good signature, that covers only part of the body"
    elif case == "From not signed":
        signed = _signed_without_from(private, _message())
        assert dkim.verify(signed, dnsfunc=txt), "a good signature, of the Subject only"
    elif case == "appended below the signed part":
        signed = _signed(private, _message(), length=True) + b"#observer add spy@evil.example\r\n"
    assert dkim_verified(signed, ALICE, txt) is None


def test_a_signature_with_garbage_fields_is_not_an_error(keys: tuple[bytes, bytes]) -> None:
    garbage = b"DKIM-Signature: v=1; a=rsa-sha256; d=shop.example; s=s1; b=;;;===\r\n" + _message()
    assert dkim_verified(garbage, ALICE, _dns(keys[1])) is None
    assert dkim_verified(b"DKIM-Signature: \r\n\r\n", ALICE, _dns(keys[1])) is None


@pytest.fixture
def shop(tmp_path: Path, keys: tuple[bytes, bytes]) -> Context:
    return open_context(Settings(home=tmp_path, data_dir=tmp_path / "var", check_dkim=True, dkim_txt=_dns(keys[1]),
                                 mailboxes=(Mailbox("support@shop.example"),)))


def _open_request(context: Context) -> None:
    with context.sessions.begin() as session:
        upsert_person(session, ALICE, role="coordinator")
    opening = (b"From: jean@client.example\r\nTo: support@shop.example\r\nSubject: Question\r\n"
               b"Message-ID: <q1@client.example>\r\n\r\nBonjour\r\n")
    process(context, store(context, opening, source="smtp", mailbox="support@shop.example"))


@pytest.mark.parametrize("checks, tampered, applies", [(True, False, True), (True, True, False),
                                                      (False, False, False)],
                         ids=["checked and whole", "checked and edited", "not the MX: no check"])
def test_without_a_token_a_coordinator_with_a_good_signature_keeps_her_rights(
        shop: Context, keys: tuple[bytes, bytes], checks: bool, tampered: bool, applies: bool) -> None:
    context = shop if checks else open_context(shop.settings.with_overrides(check_dkim=False))
    _open_request(context)
    signed = _signed(keys[0], _message())
    if tampered:
        signed = signed.replace(b"Je m'en occupe.", b"Je m'en occupe!")
    process(context, store(context, signed, source="smtp", mailbox="support@shop.example"))
    with context.sessions() as session:
        request = session.scalars(select(Request)).one()
        comment = session.scalars(select(Comment).order_by(Comment.id.desc())).first()
        assert ([label.name for label in request.labels] == ["urgent"]) is applies
        assert comment is not None and comment.unverified_sender is not applies
