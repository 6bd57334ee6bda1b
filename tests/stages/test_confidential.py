"""Stage 7c: confidential requests, in the five languages, by rules admins can extend."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import parsed_mail

from mailgate.confidential import ConfidentialRules, detect_confidential
from mailgate.errors import ConfigError
from mailgate.interpret import interpret
from mailgate.triage import TriageRules
from mailgate.values import Sender, SenderKind

RULES = ConfidentialRules.load()
ANA = Sender(SenderKind.SHOP_USER, "ana@shop.example", shop_id=1)
AGENT = Sender(SenderKind.AGENT, "maria@support.example", agent_id=1, verified=True)


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        # en
        ("Please reset my password for the shop admin", "access"),
        ("We changed banks, here is our new IBAN", "bank_details"),
        ("Can you send me the invoice for October?", "invoices"),
        ("We need a data export of all customers", "data_export"),
        ("The shop has a new owner since Monday", "ownership"),
        # ro
        ("Vă rog să resetați parola contului", "access"),
        ("Am schimbat contul bancar al firmei", "bank_details"),
        ("Nu am primit factura pe luna trecută", "invoices"),
        ("Avem nevoie de exportul datelor clienților", "data_export"),
        ("Magazinul are un proprietar nou", "ownership"),
        # nl
        ("Ik ben mijn wachtwoord vergeten", "access"),
        ("Graag ons rekeningnummer aanpassen in de betaalmodule", "bank_details"),
        ("Kunt u de factuur opnieuw sturen?", "invoices"),
        ("Wij willen onze gegevens exporteren", "data_export"),
        ("Er is een nieuwe eigenaar van de winkel", "ownership"),
        # pt
        ("Preciso alterar a senha do painel", "access"),
        ("Atualizem os dados bancários da loja, por favor", "bank_details"),
        ("Não recebi a nota fiscal do mês", "invoices"),
        ("Queremos exportar dados dos clientes", "data_export"),
        ("A loja tem um novo proprietário", "ownership"),
        # pl
        ("Proszę o zmianę hasła do panelu", "access"),
        ("Zmieniliśmy konto bankowe firmy", "bank_details"),
        ("Nie dostałem faktury za wrzesień", "invoices"),
        ("Potrzebujemy eksport danych klientów", "data_export"),
        ("Sklep ma nowego właściciela, zmiana właściciela od dziś", "ownership"),
    ],
)
def test_confidential_requests_are_recognised_in_every_language(text: str, topic: str) -> None:
    reason = detect_confidential("", text, RULES)
    assert reason is not None and reason.startswith(f"{topic}:")


@pytest.mark.parametrize(
    "text",
    [
        "Checkout is broken, customers cannot pay",
        "Plata nu merge pe site",
        "Betaling mislukt bij het afrekenen",
        "O carrinho não funciona",
        "Koszyk nie działa",
        "We sold 100 items yesterday and the stock is wrong",
        "How do I change the colour of the buttons?",
    ],
)
def test_ordinary_problems_are_not_confidential(text: str) -> None:
    assert detect_confidential("Question", text, RULES) is None


def test_matching_forgives_missing_accents() -> None:
    assert detect_confidential("", "am uitat parola", RULES) == "access: 'parola'"
    assert detect_confidential("", "prosze o nowe haslo", RULES) == "access: 'haslo'"
    assert detect_confidential("", "WACHTWOORD vergeten", RULES) == "access: 'wachtwoord'"


def test_the_subject_counts_too() -> None:
    assert detect_confidential("IBAN change", "see below", RULES) == "bank_details: 'iban'"


def test_admins_extend_the_rules_in_their_own_file(tmp_path: Path) -> None:
    own = tmp_path / "confidential.toml"
    own.write_text('[[topic]]\nname = "vouchers"\nkeywords = ["gift card codes"]\n')
    rules = ConfidentialRules.load(own)
    assert detect_confidential("", "Send me all gift card codes", rules) == (
        "vouchers: 'gift card codes'"
    )


def test_an_unreadable_rules_file_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[topic]\nname=")
    with pytest.raises(ConfigError, match="confidential rules"):
        ConfidentialRules.load(broken)


def test_interpret_flags_a_merchants_request_and_says_why() -> None:
    mail = parsed_mail(subject="Urgent", reply_text="Please change our IBAN")
    result = interpret(mail, ANA, TriageRules.load())
    assert result.confidential and result.confidential_reason == "bank_details: 'iban'"


def test_an_agent_writing_about_a_password_is_not_a_request() -> None:
    mail = parsed_mail(subject="Re: [#7]", reply_text="We have reset your password.")
    assert not interpret(mail, AGENT, TriageRules.load()).confidential


def test_quoted_text_is_not_read() -> None:
    mail = parsed_mail(
        body_text="Thanks!\n> Never send passwords by email",
        reply_text="Thanks!",
    )
    assert not interpret(mail, ANA, TriageRules.load()).confidential
