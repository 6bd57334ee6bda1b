"""The workflow's notifications: stand-by reasons in words, budgets, deadlines, follow-up
acknowledgements in every language folder, and the mails to agents."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from mailgate.config import OutboundSettings
from mailgate.outbound.compose import Composer, Notification, builtin_templates_dir
from store.enums import StandbyReason

COMPOSER = Composer(
    OutboundSettings(**{"from": "Support <support@example.com>"}),
    b"0123456789abcdef0123456789abcdef",
    lambda: datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
)
TICKET = {"id": 41, "subject": "Export comenzi", "requester_name": "Ana", "status": "on_hold"}
LANGUAGES = sorted(p.name for p in builtin_templates_dir().iterdir() if p.is_dir())


def render(kind: str, language: str = "en", **context: Any) -> tuple[str, str, str | None]:
    """(subject, text, html) of ``kind`` rendered for ticket #41."""
    rendered = COMPOSER.render(
        Notification(
            kind=kind,
            ticket_id=41,
            language=language,
            to=("ana@magazin.example",),
            context={"ticket": TICKET, **context},
        )
    )
    msg = message_from_bytes(rendered.raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None
    return msg["Subject"], text.get_content(), html.get_content() if html else None


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("reason", list(StandbyReason))
def test_the_stand_by_reminder_names_every_reason_in_words(
    language: str, reason: StandbyReason
) -> None:
    subject, text, html = render("standby_reminder", language, standby_reason=reason.value)
    assert "[#41]" in subject and "#41" in text
    assert reason.value not in text, "the reason in words, not its code"
    assert html is not None and reason.value not in html


def test_a_reminder_while_waiting_for_the_merchant_asks_for_the_information() -> None:
    _, text, _ = render("standby_reminder", standby_reason="awaiting_merchant_data")
    assert "Please reply to this email with the information" in text
    assert "because we are waiting for information from you" in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_budget_shows_the_sum_and_how_to_answer(language: str) -> None:
    money = {"hours": "12", "rate": "45.00", "amount": "540.00", "currency": "EUR"}
    _, text, html = render("budget_proposal", language, **money)
    assert html is not None
    for part in (text, html):
        for shown in ("12", "45.00 EUR", "540.00 EUR", "#approve", "#reject"):
            assert shown in part, (language, shown)


def test_the_english_budget_reads_as_a_sum() -> None:
    money = {"hours": "12", "rate": "45.00", "amount": "540.00", "currency": "EUR"}
    subject, text, _ = render("budget_proposal", **money)
    assert "approval" in subject
    assert "12 hours x 45.00 EUR per hour = 540.00 EUR" in text
    assert "APPROVE" in text and "REJECT" in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("approved", [True, False])
def test_the_budget_answer_is_confirmed(language: str, approved: bool) -> None:
    approved_text = render(
        "budget_decided", language, approved=True, amount="540.00", currency="EUR"
    )
    subject, text, html = render(
        "budget_decided", language, approved=approved, amount="540.00", currency="EUR"
    )
    assert "540.00 EUR" in text and html is not None and "540.00 EUR" in html
    assert (subject == approved_text[0]) is approved  # the subject says which


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_deadline_mail_gives_the_date(language: str) -> None:
    subject, text, html = render("deadline_set", language, deadline="2026-12-18")
    assert "2026-12-18" in subject and "2026-12-18" in text
    assert html is not None and "2026-12-18" in html


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_follow_up_acknowledgement_names_the_closed_ticket_in_every_language(
    language: str,
) -> None:
    subject, text, html = render("ack", language, follow_up_of=39001)
    assert "39001" in subject and "39001" in text, f"{language}/ack does not name it"
    assert html is None or "39001" in html
    _, plain, _ = render("ack", language, follow_up_of=None)
    assert "39001" not in plain


def test_agent_mails_carry_the_facts_and_how_to_answer() -> None:
    details = {"verified": False, "assignee": "", "suggested_sector": "payments"}
    subject, text, _ = render(
        "agent_new_ticket",
        message="Clienții nu pot plăti.",
        details=details,
        due="2026-11-23 10:00 UTC",
    )
    assert subject.startswith("[#41] New")
    for fact in (
        "Clienții nu pot plăti.",
        "NOT verified",
        "Triage suggests sector payments",
        "due 2026-11-23 10:00 UTC",
        "#note",
        "Reply to this mail",
    ):
        assert fact in text, fact
    _, error, _ = render("agent_command_error", errors=("unknown command '#frobnicate'",))
    assert "- unknown command '#frobnicate'" in error and "NOT relayed" in error
