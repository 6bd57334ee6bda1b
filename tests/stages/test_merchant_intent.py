"""Stage 7c: a merchant's reply that marks the ticket solved or answers a budget."""

from __future__ import annotations

import pytest
from factories import parsed_mail

from mailgate.interpret import interpret
from mailgate.merchant_intent import default_phrases, merchant_commands
from mailgate.triage import TriageRules
from mailgate.values import Sender, SenderKind

PHRASES = default_phrases()
MERCHANT = Sender(SenderKind.SHOP_USER, "ana@shop.example", shop_id=1, verified=False)


def names(text: str) -> list[str]:
    return [c.name for c in merchant_commands(text, PHRASES)]


@pytest.mark.parametrize(
    "reply",
    [
        "rezolvat",
        "Rezolvat!",
        "REZOLVAT.",
        "opgelost",
        "Resolvido",
        "rozwiązane",
        "Rozwiazane",
        "solved",
        "  Solved!!  \n",
        "s-a rezolvat",
    ],
)
def test_a_reply_of_only_the_word_solved_in_any_language_means_solved(reply: str) -> None:
    assert names(reply) == ["solved"]


@pytest.mark.parametrize(
    "reply",
    [
        "Nu este rezolvat, încă apare eroarea.",
        "rezolvat parțial: coșul merge, plata nu",
        "The checkout is solved but the cart is not",
        "Obrigado, mas não está resolvido",
        "",
    ],
)
def test_a_sentence_that_only_mentions_the_word_is_an_ordinary_reply(reply: str) -> None:
    assert names(reply) == []


@pytest.mark.parametrize(
    ("reply", "meaning"),
    [
        ("aprob", "approve"),
        ("Da, aprob.", "approve"),
        ("Akkoord", "approve"),
        ("aprovado", "approve"),
        ("Akceptuję", "approve"),
        ("approved", "approve"),
        ("resping", "reject"),
        ("Niet akkoord", "reject"),
        ("rejeito", "reject"),
        ("Odrzucam", "reject"),
        ("Rejected.", "reject"),
    ],
)
def test_budget_answers_in_the_five_languages(reply: str, meaning: str) -> None:
    assert names(reply) == [meaning]


def test_hash_commands_work_in_any_language_and_above_text() -> None:
    assert names("#approve\nMulțumesc, începeți când puteți.") == ["approve"]
    assert names("#reject\nTe duur voor ons.") == ["reject"]
    assert names("#solved") == ["solved"]
    assert names("#status solved\nhello") == []  # agents' commands mean nothing here


def test_interpret_gives_merchants_their_commands_and_nobody_else() -> None:
    rules = TriageRules.load()
    mail = parsed_mail(reply_text="rezolvat", body_text="rezolvat\n\n> old quote")
    assert [c.name for c in interpret(mail, MERCHANT, rules).commands] == ["solved"]
    unverified_agent = Sender(SenderKind.AGENT, "maria@support.example", agent_id=1)
    assert interpret(mail, unverified_agent, rules).commands == ()
