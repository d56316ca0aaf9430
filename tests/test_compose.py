"""Outgoing mail bytes: headers any mail client reads back exactly (CONTRACT §8)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from gateway.outbound.compose import compose
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
    assert not message.defects and all(not part.defects for part in message.walk())
