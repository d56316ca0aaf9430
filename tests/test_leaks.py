"""The leak guard itself: which customer mails repeat a hidden text, whatever the quoting did to it."""

from __future__ import annotations

import pytest

from gateway.outbound.leaks import find_leak

SECRET = "Le fournisseur nous facture ce modèle 112 euros, nous le revendons 180 avec la marge habituelle."


@pytest.mark.parametrize("sent", [
    f"Bonjour,\n\n{SECRET}\n",
    "> " + SECRET.replace(" nous le", "\n> nous le").replace(" avec", "\n>> avec"),
    SECRET.upper(),
    SECRET.replace(",", " ;").replace(" ", "  ").replace(".", "!!"),
    "Voici : « ce modèle 112 euros, nous le revendons 180 » comme convenu.",
], ids=["as written", "quoted with > and >>", "in capitals", "other punctuation and spacing",
        "an 8-word slice of it"])
def test_a_mail_that_repeats_a_hidden_text_is_caught(sent: str) -> None:
    assert find_leak(sent, [SECRET]) is not None


@pytest.mark.parametrize("sent, secrets", [
    ("Nous revendons ce modèle avec plaisir.", [SECRET]),
    ("ce modèle 112 euros nous le revendons", [SECRET]),
    ("Merci pour votre message", ["Merci pour votre message"]),
    ("Colis parti ce matin, bonne journée.", ["Colis parti ce matin"]),
], ids=["a few words in common", "seven words of it", "a secret under five words is too common to guard",
        "four words, even whole"])
def test_short_or_common_phrases_are_not_taken_for_leaks(sent: str, secrets: list[str]) -> None:
    assert find_leak(sent, secrets) is None


def test_a_whole_secret_of_five_to_seven_words_is_guarded() -> None:
    assert find_leak("Re: la marge est de trente pour cent, ok ?", ["La marge est de trente"]) is not None
    assert find_leak("la marge est de", ["La marge est de trente"]) is None


FOOTER = "Boutique · demande n°31. Répondez à ce mail pour nous écrire. Toutes vos demandes : https://x/me/t"


def test_a_secret_that_repeats_the_templates_own_words_is_no_leak_of_them() -> None:
    """The footer is the template's (``ours``): a stranger who wrote it in an unverified comment holds
    nothing; what the people wrote is still compared, the template's words around it or not."""
    sent = f"Nous étudions votre demande.\n\n--\n{FOOTER}"
    ours = f"\n\n--\n{FOOTER}"
    assert find_leak(sent, [f"hello {FOOTER}"]) is not None, "without the template's words, a match"
    assert find_leak(sent, [f"hello {FOOTER}"], lambda: ours) is None
    stranger = "Remboursez tout de suite sinon je publie vos factures en ligne"
    assert find_leak(f"Vu : {stranger}.\n\n--\n{FOOTER}", [f"{FOOTER} {stranger}"], lambda: ours) == \
        "remboursez tout de suite sinon je publie vos"
