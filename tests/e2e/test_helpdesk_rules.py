"""Rules, observers, suppliers and the leak guard, over SMTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import Gateway, body_text, mail, write_home

CUSTOMER = "hugo@client.example"


def test_built_in_rules_are_recorded_with_why_they_matched(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator")
    gateway.send(mail(CUSTOMER, "support@shop.example", "Question", "Bonjour"))
    gateway.wait_idle()
    gateway.reply("alice@shop.example", gateway.mails_to("alice@shop.example")[0], "Bonjour Hugo")
    rules = gateway.show(1)["rules"]
    names = [r["rule"] for r in rules]
    assert names == ["coordinator-public-reply-expects-customer", "coordinator-public-reply-starts-work"]
    assert rules[0]["why"] == 'role == "coordinator" and visibility == "public"'
    assert rules[1]["did"] == "status in-progress"


def test_a_site_rule_file_changes_routing(tmp_path: Path) -> None:
    config = write_home(tmp_path / "home")
    (config.parent / "rules").mkdir()
    (config.parent / "rules" / "routing.toml").write_text('''
[[rules]]
name = "refunds-to-bob"
event = "message"
condition = 'text =~~ "(?i)rembours"'
actions = [{ assign = "bob@shop.example" }, { label = "remboursement" }]

[[rules]]
name = "urgent"
event = "message"
condition = 'subject =~~ "(?i)urgent"'
actions = [{ label = "urgent" }]

[[rules]]
name = "coordinator-public-reply-starts-work"
event = "comment"
enabled = false
''')
    gw = Gateway(config).start()
    try:
        gw.add_person("alice@shop.example", "coordinator")
        gw.add_person("bob@shop.example", "coordinator")
        gw.send(mail(CUSTOMER, "support@shop.example", "URGENT commande", "Je veux être remboursé."))
        gw.wait_idle()
        request = gw.show(1)
        assert request["assignee"] == "bob@shop.example"
        assert request["labels"] == ["remboursement", "urgent"]
        assert [m["To"] for m in gw.outbox() if "New request" in str(m["Subject"])
                or "Nouvelle demande" in str(m["Subject"])] == ["bob@shop.example"], "assigned: only Bob is told"
        gw.reply("bob@shop.example", gw.mails_to("bob@shop.example")[0], "Remboursement lancé.")
        assert gw.show(1)["status"] == "new", "the site disabled the built-in rule"
    finally:
        assert gw.stop() == 0


def test_a_broken_rule_file_is_refused_at_start_with_file_line_and_reason(tmp_path: Path) -> None:
    config = write_home(tmp_path / "home")
    (config.parent / "rules").mkdir()
    rule_file = config.parent / "rules" / "broken.toml"
    rule_file.write_text('\n[[rules]]\nname = "ok"\nevent = "message"\n\n[[rules]]\nname = "bad"\n'
                         'event = "message"\nactions = [{ lable = "x" }]\n')
    env = {"GATEWAY_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    check = subprocess.run([sys.executable, "-m", "gateway", "check"], capture_output=True, text=True, env=env)
    assert check.returncode == 1
    assert f"{rule_file}:6:" in check.stderr and "unknown action 'lable'" in check.stderr
    serve = subprocess.run([sys.executable, "-m", "gateway", "serve", "--smtp-port", "0"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert serve.returncode == 1 and "unknown action 'lable'" in serve.stderr
    rule_file.write_text('[[rules]]\nname = "bad"\nevent = "message"\ncondition = "subject =="\n')
    check = subprocess.run([sys.executable, "-m", "gateway", "check"], capture_output=True, text=True, env=env)
    assert check.returncode == 1 and f"{rule_file}:1:" in check.stderr and "syntax error" in check.stderr


def test_observers_with_and_without_an_account(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator")
    gateway.add_person("olga@shop.example", "observer")
    gateway.send(mail(CUSTOMER, "support@shop.example", "Suivi", "Bonjour"))
    gateway.wait_idle()
    notification = gateway.mails_to("alice@shop.example")[0]
    gateway.reply("alice@shop.example", notification,
                  "#observer add olga@shop.example\n#observer add expert@partner.example")
    assert len(gateway.mails_to("olga@shop.example")) == 1, "an account observer is told when added"
    assert gateway.mails_to("expert@partner.example") == [], "a mail-only observer gets replies only"
    gateway.reply("alice@shop.example", notification, "#private\nAvis de l'expert ?")
    expert_mail = gateway.mails_to("expert@partner.example")[-1]
    assert "Avis de l'expert" in body_text(expert_mail)
    assert len(gateway.mails_to("olga@shop.example")) == 2
    gateway.reply("expert@partner.example", expert_mail, "#private\nLe défaut est connu.")
    request = gateway.show(1)
    assert request["comments"][-1]["author"] == "expert@partner.example"
    assert request["comments"][-1]["role"] == "observer"
    assert request["comments"][-1]["unverified_sender"] is False
    assert len(gateway.mails_to(CUSTOMER)) == 1
    participants = {p["email"]: p for p in request["participants"]}
    assert participants["expert@partner.example"]["mail_only"] is True
    assert participants["olga@shop.example"]["mail_only"] is False

    gateway.reply("alice@shop.example", notification, "#observer remove expert@partner.example\nOn continue.")
    assert len(gateway.mails_to("expert@partner.example")) == 1, "removed: no more mail"
    gateway.reply("expert@partner.example", expert_mail, "Encore moi")
    assert gateway.show(1)["comments"][-1]["unverified_sender"] is True, "a removed observer's token is void"


def test_a_named_product_brings_in_its_supplier_who_may_not_change_status(tmp_path: Path) -> None:
    gw = Gateway(write_home(tmp_path / "home", include_supplier=True)).start()
    try:
        gw.add_person("alice@shop.example", "coordinator")
        gw.cli("products", "add", "LAMP-7", "--name", "Lampe Arc", "--supplier", "usine@supplier.example")
        gw.send(mail(CUSTOMER, "support@shop.example", "Ma Lampe Arc clignote", "Elle clignote."))
        gw.wait_idle()
        [supplier_alert] = gw.mails_to("usine@supplier.example")
        assert "clignote" in body_text(supplier_alert)
        request = gw.show(1)
        assert request["product"] == "LAMP-7"
        assert "supplier" in [p["role"] for p in request["participants"]]
        gw.reply("alice@shop.example", gw.mails_to("alice@shop.example")[0], "#private\nUsine, une idée ?")
        assert gw.show(1)["expected_response"] == "supplier"
        supplier_view = gw.mails_to("usine@supplier.example")[-1]
        assert "Usine, une idée" in body_text(supplier_view), "suppliers see private comments"
        gw.reply("usine@supplier.example", supplier_view, "#status resolved\nChanger le transformateur.")
        assert gw.show(1)["status"] == "in-progress" or gw.show(1)["status"] == "new"
        assert "not allowed for a supplier" in body_text(gw.mails_to("usine@supplier.example")[-1])
        gw.reply("usine@supplier.example", supplier_view, "#private\nChanger le transformateur.")
        request = gw.show(1)
        assert request["comments"][-1]["text"] == "Changer le transformateur."
        assert request["expected_response"] == "coordinator", "a supplier's reply flips it back"
        assert len(gw.mails_to(CUSTOMER)) == 1
        gw.send(mail("autre@client.example", "support@shop.example", "Question générale", "Rien à voir"))
        gw.wait_idle()
        assert len(gw.mails_to("usine@supplier.example")) == 3, "no product named: no supplier"
        gw.send(mail(CUSTOMER, "support@shop.example", "Autre chose", "Sans rapport."))
        gw.send(mail("usine@supplier.example", "support@shop.example", "liste", "#list"))
        gw.wait_idle()
        listing = body_text(gw.mails_to("usine@supplier.example")[-1])
        assert "Ma Lampe Arc clignote" in listing and "Autre chose" not in listing, "a supplier's own requests"
        assert f"(de {CUSTOMER})" in listing, "with their requester"
    finally:
        assert gw.stop() == 0


def test_a_stranger_who_repeats_the_mails_footer_cannot_hold_the_customers_mail(gateway: Gateway) -> None:
    """A forged From and a subject tag make an unverified (private) comment; its text, the footer of every
    mail to the customer, site name and request number included, is the template's, no one's secret."""
    gateway.add_person("alice@shop.example", "coordinator")
    gateway.send(mail(CUSTOMER, "support@shop.example", "Remboursement", "Je veux un remboursement."))
    gateway.wait_idle()
    footer = "Boutique Test · demande n°1. Répondez à ce mail pour nous écrire. Toutes vos demandes :"
    gateway.send(mail("alice@shop.example", "support@shop.example", "[#1] hello", footer))
    gateway.wait_idle()
    assert gateway.show(1)["comments"][-1]["unverified_sender"] is True
    gateway.reply("alice@shop.example", gateway.mails_to("alice@shop.example")[0],
                  "Nous étudions votre demande, réponse demain.")
    assert body_text(gateway.mails_to(CUSTOMER)[-1]).startswith("Nous étudions votre demande")
    assert gateway.count("SELECT count(*) FROM outbox WHERE status = 'held'") == 0


def test_the_leak_guard_holds_a_public_reply_quoting_a_private_comment(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator")
    gateway.add_person("bob@shop.example", "coordinator")
    gateway.send(mail(CUSTOMER, "support@shop.example", "Remboursement", "Je veux un remboursement."))
    gateway.wait_idle()
    secret = "Ce client a deja obtenu trois remboursements cette annee, ne pas ceder cette fois"
    gateway.reply("bob@shop.example", gateway.mails_to("bob@shop.example")[0], f"#private\n{secret}")
    notification = gateway.mails_to("alice@shop.example")[-1]
    # An Outlook-style reply whose history is pasted without any quote header the stripper knows.
    gateway.reply("alice@shop.example", notification,
                  f"#public\nNous étudions votre demande.\n\n\n{secret}\n")
    assert len(gateway.mails_to(CUSTOMER)) == 1, "only the acknowledgment: the reply is held"
    held = gateway.mails_to("alice@shop.example")[-1]
    assert "retenu" in str(held["Subject"])
    assert "trois remboursements" in body_text(held)
    assert any(e["kind"] == "leak-held" for e in gateway.show(1)["events"])
    assert gateway.count("SELECT count(*) FROM outbox WHERE status = 'held'") == 1
    gateway.reply("alice@shop.example", held, "#public\nNous étudions votre demande.")
    assert body_text(gateway.mails_to(CUSTOMER)[-1]).startswith("Nous étudions votre demande.")
