"""Stage 7: commands at the top of agents' mails, and triage of new tickets."""

from __future__ import annotations

import pytest
from factories import parsed_mail

from mailgate.commands import AGENT_COMMANDS, check_commands, extract_commands
from mailgate.interpret import WordReader, instructions_for, interpret
from mailgate.triage import TriageRules, triage
from mailgate.values import Sender, SenderKind

RULES = TriageRules.load()
AGENT = Sender(SenderKind.AGENT, "maria@support.example", agent_id=1, verified=True)


def test_leading_commands_are_read_and_removed() -> None:
    block = extract_commands(
        "#status pending\n#priority high\n\nThanks, we are on it.\n#not a command"
    )
    assert [c.name for c in block.commands] == ["status", "priority"]
    assert block.commands[0].args == ("pending",)
    assert block.text == "Thanks, we are on it.\n#not a command"


def test_commands_below_prose_are_text() -> None:
    block = extract_commands("Hello\n#status solved")
    assert block.commands == () and block.text == "Hello\n#status solved"


def test_a_bare_ticket_number_is_not_a_command() -> None:
    assert extract_commands("#39430\nhello").commands == ()


def test_unknown_and_empty_commands_are_errors() -> None:
    block = extract_commands("#frobnicate now\n#status\nhi")
    errors = check_commands(block.commands, AGENT_COMMANDS)
    assert errors == ("unknown command '#frobnicate now'", "'#status' needs a value")


def test_verified_agent_commands_are_interpreted() -> None:
    mail = parsed_mail(reply_text="#status pending\nPlease send the order number.")
    result = interpret(mail, AGENT, RULES)
    assert [c.name for c in result.commands] == ["status"]
    assert result.reply_text == "Please send the order number."


@pytest.mark.parametrize(
    "sender",
    [
        Sender(SenderKind.AGENT, "maria@support.example", agent_id=1, verified=False),
        Sender(SenderKind.SHOP_USER, "ana@shop.example", shop_id=1, verified=True),
    ],
)
def test_others_commands_stay_text(sender: Sender) -> None:
    mail = parsed_mail(reply_text="#status solved\nhi", body_text="#status solved\nhi")
    result = interpret(mail, sender, RULES)
    assert result.commands == () and result.reply_text.startswith("#status solved")


@pytest.mark.parametrize(
    ("subject", "text", "priority"),
    [
        ("Plata nu merge", "Clienții nu pot plăti cu cardul la checkout.", "immediate"),
        ("Betaling mislukt", "Klanten kunnen niet afrekenen.", "immediate"),
        ("Carrinho vazio", "O carrinho esvazia sozinho.", "immediate"),
        ("Płatność nie działa", "Klienci nie mogą zapłacić.", "immediate"),
        ("Question", "How do I change my logo?", None),
    ],
)
def test_urgent_list_becomes_immediate_in_every_language(
    subject: str, text: str, priority: str | None
) -> None:
    assert triage(subject, text, RULES).priority == priority


def test_triage_ignores_accents_and_explains_itself() -> None:
    result = triage("Eroare la plata", "", RULES)
    assert result.priority == "immediate" and result.type == "problem"
    assert any("'plata'" in r for r in result.reasons)


def test_development_request_is_typed() -> None:
    result = triage("Wycena nowej funkcji", "Potrzebujemy nowej funkcji w koszyku", RULES)
    assert result.type == "development"


@pytest.mark.parametrize(
    "sender",
    [
        AGENT,
        Sender(SenderKind.AGENT, "maria@support.example", agent_id=1, verified=False),
        Sender(SenderKind.SHOP_USER, "ana@shop.example", shop_id=1, verified=True),
        Sender(SenderKind.STRANGER, "eve@elsewhere.example"),
    ],
)
def test_one_reading_serves_every_sender(sender: Sender) -> None:
    """The prepare half reads a mail before anyone knows who sent it; what the sender may
    ask for is kept afterwards, and comes out as if read for that sender alone."""
    mail = parsed_mail(
        subject="Plata nu merge",
        reply_text="#status solved\n#frobnicate\nMy password is hunter2, payment fails. Solved!",
        body_text="#status solved\n#frobnicate\nMy password is hunter2, payment fails. Solved!",
    )
    reading = WordReader(RULES).read(mail)
    assert reading.agent_commands.commands and reading.agent_errors
    assert instructions_for(reading, mail, sender) == interpret(mail, sender, RULES)
