"""Stage 4b, screen what only the sender's identity tells: service mail from strangers.

The Ticket Trick: someone gets a helpdesk address (``support+39430@…``) registered at a
third-party service, whose sign-up confirmation then lands in a ticket and is mailed on.
Mail from sending services (their headers say so) and sign-up confirmations, when the
sender is not a registered user or agent, is therefore kept as suspended ``bulk`` mail:
no ticket, no acknowledgement, nothing mailed on. ``screen`` cannot decide this alone —
a registered merchant may well write through such a service — so it runs after
``identify``. Released mail is not screened again.
"""

from __future__ import annotations

import re

from mailgate.values import ParsedMail, ScreenResult, Sender, SenderKind, Verdict

# Headers that sending services (ESPs) add to every mail they relay.
SERVICE_HEADERS = (
    "Feedback-ID",
    "X-SES-Outgoing",
    "X-Mailgun-Sid",
    "X-SG-EID",
    "X-MC-User",
    "X-Mandrill-User",
    "X-PM-Message-Id",
    "X-MSFBL",
    "X-Mailjet-Campaign",
    "X-CSA-Complaints",
    "X-Campaign-ID",
    "X-SFMC-Stack",
)

# Sign-up and address confirmations, as services word them in our five languages. Only
# the imperative forms: a merchant asking "how do I verify my e-mail?" is not matched.
SIGN_UP_SUBJECT = re.compile(
    r"(?:"
    r"\b(?:confirm|verify|validate|activate)\s+your\s+"
    r"(?:e-?mail|email address|address|account|registration|sign-?up|subscription)\b|"
    r"\byour\s+(?:verification|confirmation|security|one-time)\s+code\b|"
    r"^\s*welcome to\b|"
    r"\bconfirm(?:ă|a|ați|ati)\s+(?:adresa|contul|înregistrarea|inregistrarea)\b|"  # ro
    r"\bactiveaz(?:ă|a)\s+contul\b|codul (?:tău|tau) de verificare|"
    r"\bbevestig\s+(?:je|uw)\s+(?:e-?mailadres|account|registratie|aanmelding)\b|"  # nl
    r"\bactiveer\s+(?:je|uw)\s+account\b|^\s*welkom bij\b|"
    r"\bconfirm[ea]\s+(?:o\s+)?(?:seu|teu)\s+(?:e-?mail|endereço|cadastro|registo|conta)\b|"  # pt
    r"\bative\s+(?:a\s+)?(?:sua|tua)\s+conta\b|"
    r"\bpotwierdź\s+(?:swój\s+)?(?:adres|e-?mail|konto|rejestrację)\b|"  # pl
    r"\baktywuj\s+(?:swoje\s+)?konto\b|twój kod weryfikacyjny"
    r")",
    re.IGNORECASE,
)


def service_mail_reason(mail: ParsedMail) -> str | None:
    """Why ``mail`` looks sent by a service rather than written by a person, or None."""
    for name in SERVICE_HEADERS:
        if mail.header(name) is not None:
            return f"sent through a mail service ({name})"
    if SIGN_UP_SUBJECT.search(mail.subject):
        return f"sign-up confirmation: {mail.subject[:80]}"
    return None


def screen_service_mail(screened: ScreenResult, mail: ParsedMail, sender: Sender) -> ScreenResult:
    """``screened``, or ``bulk`` when a stranger's mail comes from a sending service."""
    if not screened.is_ok or sender.kind is not SenderKind.STRANGER:
        return screened
    reason = service_mail_reason(mail)
    return ScreenResult(Verdict.BULK, reason) if reason else screened
