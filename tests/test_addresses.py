"""What counts as one address: what real people have, never what smuggles a header or a second recipient."""

from __future__ import annotations

import pytest

from gateway.addresses import BadAddress, addr_spec, takes_no_reply


@pytest.mark.parametrize("value, expected", [
    ("jean@client.example", "jean@client.example"),
    ("Jean.Dupont+devis@Client.Example", "jean.dupont+devis@client.example"),
    ("jérôme@exemple.fr", "jérôme@exemple.fr"),
    ("o'brien@mail.client.example", "o'brien@mail.client.example"),
    ("x" * 64 + "@" + "d" * 63 + ".example", "x" * 64 + "@" + "d" * 63 + ".example"),
])
def test_real_addresses_are_taken_lowercased(value: str, expected: str) -> None:
    assert addr_spec(value) == expected


@pytest.mark.parametrize("value", [
    "victim@client.example\r\nBcc: evil@attacker.example", "victim@client.example\r\nBcc:evil@attacker.example",
    "victim@client.example\nX: y", "victim@client.example\x00", "a@b.example, c@d.example", "a@b.example c@d.example",
    "Jean <jean@client.example>", "<jean@client.example>", "jean@client.example>", "jean", "@client.example",
    "jean@", "jean@client", "jean@@client.example", "a@b@client.example", '"quoted"@client.example',
    "jean@client..example", ".jean@client.example", "jean.@client.example", "jean@-",
    "x" * 65 + "@client.example", "x@" + "d" * 64 + ".example", "x@" + ("d" * 60 + ".") * 5 + "example",
    "", " ", "jean@client.example\t", "(comment)jean@client.example",
    "\u212aate@shop.example", "kate@\u212ashop.example", "jean\u200b@client.example", "jean@client\u00a0.example",
])
def test_anything_else_is_refused_with_a_reason(value: str) -> None:
    with pytest.raises(BadAddress, match=r"address"):
        addr_spec(value)


@pytest.mark.parametrize("address", [
    "no-reply@carrier.example", "noreply@shop.example", "NoReply@x.example", "donotreply@x.example",
    "do-not-reply@x.example", "do_not_reply@x.example", "ne-pas-repondre@x.fr", "nepasrepondre@x.fr",
    "mailer-daemon@x.example", "MAILER-DAEMON@x.example", "bounces+12345@lists.example", "bounce-42@x.example",
    "orders-noreply@shop.example", "shop.no-reply@x.example"])
def test_senders_that_take_no_reply_are_known_by_their_local_part(address: str) -> None:
    assert takes_no_reply(address)


@pytest.mark.parametrize("address", ["jean@client.example", "nobody@x.example", "noreen@x.example",
                                     "bouncer@x.example", "replyall@x.example", "no@x.example",
                                     "reply@x.example", "bouncy.castle@x.example"])
def test_people_are_not_taken_for_robots(address: str) -> None:
    assert not takes_no_reply(address)
