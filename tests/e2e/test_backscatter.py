"""A flood, a robot or the gateway itself never turns into a flood of mail back (backscatter).

A security review sent 200 mails in 20 s from one (forged) sender and got 200 acknowledgments to
that address and 400 alerts to the coordinators; a carrier's "no-reply@" was acknowledged; mail
from support@ itself was acknowledged to support@.
"""

from __future__ import annotations

from conftest import Gateway, mail

FLOODER = "victim@client.example"


def test_a_flood_from_one_sender_is_kept_with_five_acknowledgments_and_one_digest(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator", "en")
    for n in range(12):
        gateway.send(mail(FLOODER, "support@shop.example", f"Spam {n}", f"Message {n}"))
    gateway.wait_idle()
    assert len(gateway.requests()) == 12, "every message is kept, in the inbox:\n" + gateway.log.read_text()[-4000:]
    assert len(gateway.mails_to(FLOODER)) == 5
    to_alice = [str(m["Subject"]) for m in gateway.mails_to("alice@shop.example")]
    assert len(to_alice) == 6
    [digest] = [s for s in to_alice if "opened more than 5 requests within an hour" in s]
    assert digest.startswith("[#6]")
    assert any(e["kind"] == "rate-limited" for e in gateway.show(12)["events"])
    gateway.send(mail("someone.else@client.example", "support@shop.example", "Question", "Bonjour"))
    gateway.wait_idle()
    assert len(gateway.mails_to("someone.else@client.example")) == 1, "other senders are not held back"


def test_a_sender_that_takes_no_reply_is_shown_to_the_coordinators_but_not_acknowledged(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator", "en")
    for sender in ("no-reply@carrier.example", "Suivi <ne-pas-repondre@transporteur.example>",
                   "bounces+12345@lists.example"):
        gateway.send(mail(sender, "support@shop.example", "Your package is on the way!", "Tracking: 1Z999"))
    gateway.wait_idle()
    assert len(gateway.requests()) == 3
    assert len(gateway.mails_to("alice@shop.example")) == 3
    assert [m["To"] for m in gateway.outbox()] == ["alice@shop.example"] * 3


def test_the_gateway_never_mails_its_own_addresses(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator", "en")
    gateway.send(mail("support@shop.example", "support@shop.example", "Boucle", "Bonjour"))
    gateway.send(mail("Orders <orders@shop.example>", "support@shop.example", "Boucle", "Bonjour"))
    gateway.wait_idle()
    assert len(gateway.requests()) == 2
    recipients = {m["To"] for m in gateway.outbox()}
    assert recipients == {"alice@shop.example"}
