"""Property: whatever bytes a message holds, in whatever header or body, with whatever line ends,
``parse`` never raises, and the pipeline turns it into a request or a comment (automatic mail
aside, which is kept as what it is), never into a message that no one owns."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway.cli.parsed import parsed_json
from gateway.context import open_context
from gateway.helpdesk import upsert_person
from gateway.intake.admission import store
from gateway.mail.parse import parse
from gateway.models import Comment, Inbound
from gateway.pipeline.process import process_safely
from gateway.settings import Mailbox, Settings

HEADERS = ["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References", "Date", "MIME-Version",
           "Content-Type", "Content-Disposition", "Content-Transfer-Encoding", "Reply-To", "X-Mailer"]
PLAUSIBLE = {
    "From": [b"Jean <jean@client.example>", "Jérôme <jérôme@client.example>".encode(), b"=?utf-8?q?Z=C3=A9?= <z@c.ex>",
             b"<alice@shop.example>@attacker.example", b"a@b.example, c@d.example", b"\xff\xfe@\x80", b""],
    "Content-Type": [b"multipart/mixed; boundary=b", b"text/plain; charset=utf-8", b"text/html; charset=\"bogus\"",
                     b"multipart/alternative", b"message/rfc822", b"text/plain; charset=iso-8859-1"],
    "Content-Disposition": ['attachment; filename="facture_été.pdf"'.encode(), b"attachment; filename*=bogus''%ff",
                            b"inline; filename=\xd0\xa1\xd1\x87\xd0\xb5\xd1\x82.pdf"],
    "Content-Transfer-Encoding": [b"base64", b"quoted-printable", b"8bit", b"x-uuencode", b"\xff"],
    "Subject": ["Facture d’été".encode(), b"=?utf-8?b?!!!?= =?bogus?q?x?=", b"R\xe9clamation \x80", b"[#1] Re: x"],
}
header_line_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A message of random headers (plausible values, raw bytes, or both) and a random body."""
    end = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines = []
    for name in draw(st.lists(st.sampled_from(HEADERS), max_size=10)):
        value = draw(st.one_of(st.sampled_from(PLAUSIBLE.get(name, [b"x"])), header_line_bytes,
                               st.tuples(st.sampled_from(PLAUSIBLE.get(name, [b"x"])), header_line_bytes)
                               .map(b"".join)))
        lines.append(name.encode() + b": " + value)
    parts = draw(st.lists(st.tuples(st.lists(header_line_bytes, max_size=2), st.binary(max_size=200)), max_size=3))
    body = b"".join(b"--b" + end + b"".join(b"Content-Type: " + h + end for h in heads) + end + payload + end
                    for heads, payload in parts)
    body += draw(st.binary(max_size=300)) + (b"--b--" + end if parts else b"")
    return end.join(lines) + end + end + body


@settings(max_examples=400, deadline=None)
@given(messages())
def test_parsing_never_raises_and_gives_json_text(raw: bytes) -> None:
    parsed = parse(raw)
    shown = json.dumps(parsed_json(parsed), ensure_ascii=False)
    shown.encode("utf-8")  # no lone surrogate from raw bytes anywhere
    assert isinstance(parsed.subject, str) and isinstance(parsed.text, str)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=4))
def test_every_message_ends_as_a_request_or_a_comment_someone_sees(raws: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        context = open_context(Settings(home=home, data_dir=home / "var", secret_key="k" * 40,
                                        mailboxes=(Mailbox("support@shop.example"),)))
        with context.sessions.begin() as session:
            upsert_person(session, "alice@shop.example", role="coordinator")
        for raw in raws:
            inbound_id = store(context, raw, source="smtp", mailbox="support@shop.example",
                               envelope_from="sender@client.example")
            outcome = process_safely(context, inbound_id)
            assert outcome.status in ("processed", "degraded", "duplicate"), outcome.decision
            with context.sessions() as session:
                row = session.get(Inbound, inbound_id)
                assert row is not None and row.status == outcome.status
                if outcome.status == "duplicate" or parse(raw).auto is not None:
                    continue
                assert row.request_id is not None, outcome.decision
                assert session.scalar(select(func.count(Comment.id)).where(Comment.inbound_id == inbound_id)) == 1 \
                    or "no comment" in outcome.decision, outcome.decision
        context.engine.dispose()
