"""Stage 4b: mail from sending services and sign-up confirmations, when a stranger sends it."""

from __future__ import annotations

import pytest
from factories import parsed_mail

from mailgate.automated import screen_service_mail, service_mail_reason
from mailgate.values import ScreenResult, Sender, SenderKind, Verdict

OK = ScreenResult(Verdict.OK)
STRANGER = Sender(SenderKind.STRANGER, "feedback@slack.example")
MERCHANT = Sender(SenderKind.SHOP_USER, "ana@magazin.example", shop_id=1)


@pytest.mark.parametrize(
    "subject",
    [
        "Please confirm your email address",
        "Verify your account",
        "Your verification code is 123456",
        "Welcome to Acme!",
        "Confirmă adresa de e-mail",
        "Bevestig je e-mailadres",
        "Confirme o seu e-mail",
        "Potwierdź swój adres e-mail",
    ],
)
def test_sign_up_confirmations_are_recognised(subject: str) -> None:
    reason = service_mail_reason(parsed_mail(subject=subject))
    assert reason is not None and reason.startswith("sign-up confirmation")


@pytest.mark.parametrize(
    "subject",
    [
        "How do I verify my email in the admin?",
        "Customers cannot confirm their orders",
        "The welcome page of the shop is broken",
    ],
)
def test_merchants_asking_about_confirmations_are_not_service_mail(subject: str) -> None:
    assert service_mail_reason(parsed_mail(subject=subject)) is None


def test_a_sending_services_headers_give_it_away() -> None:
    mail = parsed_mail(subject="Your export", headers=(("Feedback-ID", "1:acme:ses"),))
    assert service_mail_reason(mail) == "sent through a mail service (Feedback-ID)"


def test_only_strangers_service_mail_is_held() -> None:
    mail = parsed_mail(subject="Welcome to Acme", headers=(("X-SES-Outgoing", "x"),))
    assert screen_service_mail(OK, mail, STRANGER).verdict is Verdict.BULK
    assert screen_service_mail(OK, mail, MERCHANT) is OK  # a merchant may use such a service
    held = ScreenResult(Verdict.AUTO_REPLY, "Auto-Submitted")
    assert screen_service_mail(held, mail, STRANGER) is held
