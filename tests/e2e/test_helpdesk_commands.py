"""Running the helpdesk from a mail client: every #command, its permissions, and the error mail."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import Gateway, body_text, mail, write_home

CUSTOMER = "lea@client.example"


@pytest.fixture
def desk(gateway: Gateway) -> Gateway:
    """Two coordinators and one open request (#1) from a customer."""
    gateway.add_person("alice@shop.example", "coordinator", "fr")
    gateway.add_person("bob@shop.example", "coordinator", "en")
    gateway.send(mail(CUSTOMER, "support@shop.example", "Livraison", "Où est mon colis ?"))
    gateway.wait_idle()
    return gateway


def alert(gw: Gateway, who: str = "alice@shop.example") -> EmailMessage:
    return gw.mails_to(who)[0]


def test_status_assign_label_and_expect_apply_after_the_comment(desk: Gateway) -> None:
    desk.reply("alice@shop.example", alert(desk), "#assign me\n#label livraison\n#label urgent\n#expect supplier\n"
                                                  "Je m'en occupe.")
    request = desk.show(1)
    assert request["assignee"] == "alice@shop.example"
    assert request["labels"] == ["livraison", "urgent"]
    assert request["expected_response"] == "supplier", "explicit commands come after the automatic flips"
    assert request["status"] == "in-progress"
    desk.reply("alice@shop.example", alert(desk), "#unlabel urgent\n#status resolved\n#assign all\nC'est livré.")
    request = desk.show(1)
    assert (request["labels"], request["status"], request["assignee"]) == (["livraison"], "resolved", None)
    assert body_text(desk.mails_to(CUSTOMER)[-1]).startswith("C'est livré.")


def test_a_commands_only_reply_posts_no_comment(desk: Gateway) -> None:
    desk.reply("alice@shop.example", alert(desk), "#assign bob@shop.example")
    request = desk.show(1)
    assert request["assignee"] == "bob@shop.example"
    assert len(request["comments"]) == 1
    assert len(desk.mails_to(CUSTOMER)) == 1


def test_a_note_is_team_only_and_takes_the_rest_of_the_mail(desk: Gateway) -> None:
    desk.reply("alice@shop.example", alert(desk), "#note Client fidèle\ngeste commercial possible")
    request = desk.show(1)
    assert [n["text"] for n in request["notes"]] == ["Client fidèle\n\ngeste commercial possible"]
    assert len(request["comments"]) == 1
    assert len(desk.mails_to(CUSTOMER)) == 1
    assert "geste commercial" in body_text(desk.mails_to("bob@shop.example")[-1])
    desk.reply("alice@shop.example", alert(desk), "#label fidèle")
    shown = desk.cli("requests", "show", "1").stdout
    assert "labels: fidèle" in shown and "(internal note)\nClient fidèle" in shown, "the text form shows them too"


def test_one_bad_line_applies_nothing_and_the_error_mail_names_each_bad_line(desk: Gateway) -> None:
    desk.reply("alice@shop.example", alert(desk), "#assign me\n#stauts resolved\n#status done\n"
                                                  "#assign nobody@shop.example\nRéponse")
    request = desk.show(1)
    assert request["assignee"] is None and request["status"] == "new"
    assert len(request["comments"]) == 1, "the comment is not posted either"
    [error] = [m for m in desk.mails_to("alice@shop.example") if "Instruction refusée" in str(m["Subject"])]
    text = body_text(error)
    assert "#stauts resolved" in text and "unknown command" in text
    assert "#status done" in text
    attached = [part for part in error.iter_attachments() if part.get_content_type() == "message/rfc822"]
    assert len(attached) == 1, "the error mail carries the original"
    desk.reply("alice@shop.example", alert(desk), "#assign me\n#stauts resolved\n#status done\nRéponse")
    errors = [m for m in desk.mails_to("alice@shop.example") if "Instruction refusée" in str(m["Subject"])]
    assert len(errors) == 2, "a different error is answered"
    desk.reply("alice@shop.example", alert(desk), "#assign me\n#stauts resolved\n#status done\nRéponse")
    errors = [m for m in desk.mails_to("alice@shop.example") if "Instruction refusée" in str(m["Subject"])]
    assert len(errors) == 2, "the same error is answered at most once an hour"


def test_an_unknown_address_in_assign_is_refused(desk: Gateway) -> None:
    desk.reply("alice@shop.example", alert(desk), "#assign ghost@shop.example\nRéponse")
    assert desk.show(1)["assignee"] is None
    error = desk.mails_to("alice@shop.example")[-1]
    assert "ghost@shop.example is not a coordinator" in body_text(error)


def test_a_customers_hash_lines_are_plain_text(desk: Gateway) -> None:
    desk.reply(CUSTOMER, desk.mails_to(CUSTOMER)[0], "#status resolved\nMerci")
    request = desk.show(1)
    assert request["comments"][-1]["text"] == "#status resolved\nMerci"
    assert request["status"] == "new"


def test_product_and_delivery_are_linked(desk: Gateway) -> None:
    desk.cli("products", "add", "TAB-01", "--name", "Table basse")
    desk.reply("alice@shop.example", alert(desk), "#product TAB-01\n#delivery COLIS-42")
    request = desk.show(1)
    assert (request["product"], request["delivery"]) == ("TAB-01", "COLIS-42")
    desk.reply("alice@shop.example", alert(desk), "#product NOPE")
    assert "no product with SKU NOPE" in body_text(desk.mails_to("alice@shop.example")[-1])


def test_list_to_the_bare_address_answers_with_open_requests_waiting_on_the_reader_first(desk: Gateway) -> None:
    desk.send(mail("paul@client.example", "support@shop.example", "Facture", "Ma facture ?"))
    desk.wait_idle()
    desk.reply("alice@shop.example", alert(desk), "Réponse à Léa")
    desk.send(mail("alice@shop.example", "support@shop.example", "liste", "#list"))
    desk.wait_idle()
    listing = body_text(desk.mails_to("alice@shop.example")[-1])
    assert listing.index("#2") < listing.index("#1"), "#2 waits on the coordinators, #1 on the customer"
    assert "Facture" in listing and "Livraison" in listing
    assert "(de paul@client.example)" in listing, "the requester column"
    assert len(desk.requests()) == 2, "#list opens no request"


def test_list_from_an_observer_answers_with_the_requests_they_observe_only(desk: Gateway) -> None:
    desk.send(mail("paul@client.example", "support@shop.example", "Facture", "Ma facture ?"))
    desk.wait_idle()
    desk.reply("alice@shop.example", alert(desk), "#observer add compta@client.example")
    desk.send(mail("compta@client.example", "support@shop.example", "liste", "#list"))
    desk.wait_idle()
    [listing] = desk.mails_to("compta@client.example")[-1:]
    text = body_text(listing)
    assert "#1" in text and "Livraison" in text and "Facture" not in text, "only what they observe"
    assert len(desk.requests()) == 2, "#list opens no request"
    desk.send(mail("stranger@else.example", "support@shop.example", "liste", "#list"))
    desk.wait_idle()
    assert len(desk.requests()) == 3, "from anyone else, #list is a new request's first line"


def test_list_answers_at_most_mails_per_hour_listings_to_a_coordinator(tmp_path: Path) -> None:
    """#list needs no authentication (the answer goes to the coordinator's own address), so a stranger
    forging a coordinator's From must not flood them: past the hourly cap, the listing is not sent."""
    gw = Gateway(write_home(tmp_path / "home", extra="mails_per_hour = 3")).start()
    try:
        gw.add_person("alice@shop.example", "coordinator")
        for _ in range(5):
            gw.send(mail("Alice <alice@shop.example>", "support@shop.example", "liste", "#list"))
        gw.wait_idle()
        assert len(gw.mails_to("alice@shop.example")) == 3
        assert gw.count("SELECT count(*) FROM inbound WHERE decision LIKE '#list not answered%'") == 2
        assert gw.requests() == [], "nothing lost, nothing opened: each one logged with its number"
    finally:
        assert gw.stop() == 0


def test_visibility_can_change_afterwards_and_the_log_says_the_customer_saw_it(desk: Gateway) -> None:
    desk.reply("alice@shop.example", alert(desk), "Votre colis arrive demain.")
    comment_id = desk.show(1)["comments"][-1]["id"]
    result = desk.cli("comments", "visibility", str(comment_id), "private")
    assert "already seen" in result.stdout
    request = desk.show(1)
    assert request["comments"][-1]["visibility"] == "private"
    assert any("already seen" in e["detail"] for e in request["events"])
    assert desk.cli("comments", "visibility", "999", "public", check=False).returncode == 1


def test_the_inbox_filters_by_customer_label_words_and_unread(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator", "en")
    gateway.send(mail("Jean <jean@client.example>", "support@shop.example", "Colis abîmé", "Le carton est déchiré."))
    gateway.send(mail("Marie <marie@client.example>", "support@shop.example", "Facture", "Une question de TVA."))
    gateway.wait_idle()
    notice = next(m for m in gateway.mails_to("alice@shop.example") if "Facture" in str(m["Subject"]))
    gateway.reply("alice@shop.example", notice, "#label compta\nJe regarde.")

    def numbers(*options: str) -> list[int]:
        return [r["number"] for r in json.loads(gateway.cli("requests", "list", "--json", *options).stdout)]

    assert numbers("--customer", "JEAN@client.example") == [1]
    assert numbers("--label", "compta") == [2]
    assert numbers("--search", "carton") == [1], "a word of a comment"
    assert numbers("--search", "DECHIRE carton") == [1], "every word, accents and case folded"
    assert numbers("--search", "facture") == [2], "a word of the subject, any case"
    assert numbers("--search", "#2") == [2]
    assert numbers("--unread") == [1], "Alice acted on #2"
    listed = json.loads(gateway.cli("requests", "list", "--json").stdout)
    assert [r["requester"] for r in listed] == ["marie@client.example", "jean@client.example"]
    assert "jean@client.example" in gateway.cli("requests", "list").stdout, "the requester column"


def test_show_a_number_mails_that_requests_card_and_the_coordinators_reply_to_it_is_theirs(desk: Gateway) -> None:
    """#show NUMBER, in a reply or to the bare address: the card of another request, from that request's
    address, so a coordinator takes up a request no one told them of. Asked at the bare address, with no
    authentication, the card goes to the coordinator's own address, never to whoever forged their From."""
    desk.send(mail("paul@client.example", "support@shop.example", "Facture", "Ma facture ?"))
    desk.wait_idle()
    desk.reply("alice@shop.example", alert(desk), "#show 2")
    card = desk.mails_to("alice@shop.example")[-1]
    assert "[#2]" in str(card["Subject"]) and "paul@client.example" in body_text(card)
    assert len(desk.show(1)["comments"]) == 1, "a commands-only reply posts nothing on #1"
    desk.reply("alice@shop.example", card, "Votre facture est en pièce jointe de ce message.")
    assert desk.show(2)["comments"][-1]["text"].startswith("Votre facture est en pièce jointe")
    assert not desk.show(2)["comments"][-1]["unverified_sender"], "Alice's own token on #2"
    assert body_text(desk.mails_to("paul@client.example")[-1]).startswith("Votre facture")

    desk.send(mail("Bob <bob@shop.example>", "support@shop.example", "carte", "#show #1"))
    desk.wait_idle()
    card = desk.mails_to("bob@shop.example")[-1]
    assert "[#1]" in str(card["Subject"]) and "Livraison" in str(card["Subject"])
    desk.reply("bob@shop.example", card, "#assign me\nJe prends celle-ci.")
    assert desk.show(1)["assignee"] == "bob@shop.example", "Bob's commands apply on #1 with the card's token"

    forged = mail("bob@shop.example", "support@shop.example", "carte", "#show 99")
    desk.send(forged.as_bytes(), ["support@shop.example"], sender="mallory@evil.example")
    desk.wait_idle()
    assert "there is no request #99" in body_text(desk.mails_to("bob@shop.example")[-1])
    assert desk.mails_to("mallory@evil.example") == [], "answers go to the coordinator's own address alone"
    assert len(desk.requests()) == 2, "#show NUMBER opens no request"


def test_help_answers_each_role_with_its_own_commands_and_a_customers_help_is_text(desk: Gateway) -> None:
    desk.reply("alice@shop.example", alert(desk), "#observer add compta@client.example")
    desk.reply("alice@shop.example", alert(desk), "#private\nLa compta suit le dossier.")
    [observed] = desk.mails_to("compta@client.example")
    desk.reply("compta@client.example", observed, "#help")
    table = body_text(desk.mails_to("compta@client.example")[-1])
    assert "(votre rôle : observateur)" in table and "#private" in table and "#public" in table
    assert "#assign" not in table and "#note" not in table, "only what an observer may write"
    desk.reply("alice@shop.example", alert(desk), "#help")
    table = body_text(desk.mails_to("alice@shop.example")[-1])
    assert "#assign" in table and "#quote" not in table, "on a helpdesk request, no command of orders alone"
    desk.reply(CUSTOMER, desk.mails_to(CUSTOMER)[0], "#help")
    assert desk.show(1)["comments"][-1]["text"] == "#help", "a customer's # lines are the text of a comment"
    assert not any("Commandes par mail" in str(m["Subject"]) for m in desk.mails_to(CUSTOMER))


def test_questions_at_the_bare_address_never_mail_more_than_the_hours_answers(tmp_path: Path) -> None:
    """A stranger writing bad questions in a coordinator's name, each different: the error mails count in
    the same hourly budget as the answers, and none carries the stranger's mail (a relay under the shop's
    name). A second command after the question is refused: it needs a request's mail."""
    gw = Gateway(write_home(tmp_path / "home", extra="mails_per_hour = 3")).start()
    try:
        gw.add_person("alice@shop.example", "coordinator")
        gw.send(mail("Alice <alice@shop.example>", "support@shop.example", "x", "#list\n#assign me"))
        for number in range(90, 95):
            gw.send(mail("Alice <alice@shop.example>", "support@shop.example", "Vérifiez votre compte",
                         f"#show {number}\nURGENT : http://evil.example/login"))
        gw.wait_idle()
        received = gw.mails_to("alice@shop.example")
        assert len(received) == 3, "the hour's answers, error mails included"
        assert "only #help, #list or #show NUMBER" in body_text(received[0])
        assert all("there is no request #9" in body_text(m) for m in received[1:])
        assert all(list(m.iter_attachments()) == [] and "evil.example" not in m.as_string() for m in received)
        assert gw.requests() == [], "nothing opened"
    finally:
        assert gw.stop() == 0


def test_help_at_the_bare_address_answers_the_team_and_opens_no_request(desk: Gateway) -> None:
    """The help table says "#help: this table"; a coordinator who writes it to support@ gets it, where it
    used to open a request in her name, acknowledged as a customer's."""
    desk.send(mail("Alice <alice@shop.example>", "support@shop.example", "aide", "#help"))
    desk.wait_idle()
    table = desk.mails_to("alice@shop.example")[-1]
    assert str(table["Subject"]) == "Commandes par mail" and "#assign EMAIL|me|all" in body_text(table)
    assert len(desk.requests()) == 1, "no request opened"
    desk.send(mail("someone@client.example", "support@shop.example", "aide", "#help\nComment faire ?"))
    desk.wait_idle()
    assert len(desk.requests()) == 2, "from a customer, #help is a new request's first line"
