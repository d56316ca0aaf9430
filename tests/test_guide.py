"""The commands a mail names (``outbound.guide``): in step with the grammar, right for the stage."""

from __future__ import annotations

import pytest

from gateway.commands.grammar import GRAMMAR, allowed
from gateway.models import Request
from gateway.outbound import guide


def test_every_command_of_the_grammar_is_explained_in_both_languages() -> None:
    assert set(guide.COMMANDS) == set(GRAMMAR)
    assert all(usage.startswith(f"#{name}") and en and fr for name, (usage, en, fr) in guide.COMMANDS.items())


@pytest.mark.parametrize("kind, statuses", [("order", guide._ORDER_STAGES), ("helpdesk", guide._HELPDESK_STAGES)])
def test_a_stage_names_only_commands_its_reader_may_write(kind: str, statuses: dict[str, tuple[str, ...]]) -> None:
    for status in statuses:
        for role in ("coordinator", "supplier", "observer"):
            named = guide.next_commands(Request(kind=kind, status=status), role)
            assert set(named) <= set(allowed(role)), (kind, status, role)


def test_the_stage_decides_what_comes_first() -> None:
    assert guide.next_commands(Request(kind="order", status="pending"), "coordinator")[:3] == (
        "quote", "confirm", "decline")
    assert guide.next_commands(Request(kind="order", status="delivered"), "coordinator",
                               ("revision",)) == ("revision", "note")
    assert guide.next_commands(Request(kind="helpdesk", status="resolved"), "coordinator") == ("status", "note")
    assert guide.next_commands(Request(kind="order", status="confirmed"), "customer") == ()
    assert guide.hint(Request(kind="order", status="shipped"), "coordinator", "fr") == (
        "Commandes en tête de réponse : #complete [force], #paid MONTANT [RÉFÉRENCE] [-- COMMENTAIRE], "
        "#cancel RAISON, #note TEXTE"), "placeholders in the reader's words, the words commands take as they are"
    assert guide.hint(Request(kind="order", status="shipped"), "coordinator", "en").endswith("#note TEXT")
