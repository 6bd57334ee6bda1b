"""Stage 4, screen: is this mail from a person, or from a machine we must not answer?

Takes the ``ParsedMail`` from parse and the SMTP ``Envelope``; returns a ``ScreenResult``
whose verdict decides whether the mail becomes a ticket message or is suspended. The rules
are tried in a fixed order, first match wins: our own mail coming back (loop), a bounce, an
auto-reply, bulk mail, else ok. Pure: no I/O (duplicates and rate limits need the store and
are checked in the commit half of the pipeline).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from mailgate.bounces import (
    bounce_reason,
    bounced_message_ids,
    bounced_recipients,
    report_evidence,
)
from mailgate.values import Envelope, ParsedMail, ScreenResult, Verdict

__all__ = [
    "OwnMail",
    "bounced_message_ids",
    "bounced_recipients",
    "is_auto_reply",
    "is_bounce",
    "is_bulk",
    "is_own_mail",
    "screen",
]


@dataclass(frozen=True, slots=True)
class OwnMail:
    """Our outbound identity: what our own mail looks like when it comes back to us."""

    addresses: tuple[str, ...]  # our support addresses (plus-addressing implied)
    message_id_domain: str  # the composer writes Message-IDs as <mg.…@message_id_domain>


# --- loop -----------------------------------------------------------------------------------

OWN_MESSAGE_ID_PREFIX = "mg."  # what mailgate/outbound/compose.py puts first
TICKET_HEADER = "X-Mailgate-Ticket"


def is_own_mail(mail: ParsedMail, own: OwnMail) -> str | None:
    """Why ``mail`` is our own mail come back (a loop), or None."""
    ticket = mail.header(TICKET_HEADER)
    if ticket is not None:
        return f"{TICKET_HEADER}: {ticket.strip()}"
    message_id = (mail.message_id or "").strip("<>").lower()
    local, _, domain = message_id.rpartition("@")
    if local.startswith(OWN_MESSAGE_ID_PREFIX) and domain == own.message_id_domain.lower():
        return f"Message-ID is ours: <{mail.message_id}>"
    sender = (mail.from_address or "").lower()
    if sender and _base_address(sender) in {_base_address(a) for a in own.addresses}:
        return f"From is our own address: {sender}"
    return None


def _base_address(address: str) -> str:
    """``support+39430@x`` → ``support@x``: a plus-address is still our address."""
    address = address.strip().strip("<>").lower()
    local, at, domain = address.partition("@")
    return local.split("+", 1)[0] + at + domain


# --- bounce -------------------------------------------------------------------------------


def is_bounce(mail: ParsedMail, envelope: Envelope) -> str | None:
    """Why ``mail`` is a delivery failure or delay report (reason starts "delay:"), or None."""
    return bounce_reason(mail, envelope)


# --- auto-reply -------------------------------------------------------------------------------

# Out-of-office subjects as mail clients write them in our five languages (and a few
# neighbours merchants use). Anchored at the start and followed by ":", "-", "(" or the end,
# so that "Absent product images" or a merchant's "Out of office hours checkout fails"
# stays a ticket.
AUTO_REPLY_SUBJECT_RE = re.compile(
    r"^\s*(?:"
    r"out of (?:the )?office(?: auto-?reply)?|automatic reply|auto(?:matic)?[- ]?reply|"
    r"autoresponder|auto[- ]?response|vacation(?: reply)?|away from (?:the )?office|"
    r"i am out of (?:the )?office|"
    r"răspuns automat|raspuns automat|absent|absență|absenta|în concediu|"  # ro
    r"afwezig|afwezigheidsmelding|automatisch antwoord|niet aanwezig|"  # nl
    r"resposta automática|resposta automatica|ausente|ausência|fora do escritório|"  # pt
    r"automatyczna odpowiedź|automatyczna odpowiedz|odpowiedź automatyczna|"  # pl
    r"nieobecność|nieobecnosc|poza biurem|"
    r"abwesenheitsnotiz|réponse automatique|respuesta automática"  # de, fr, es
    r")\s*(?:[:\-\u2013\u2014(\[]|$)",
    re.IGNORECASE,
)
# X-Auto-Response-Suppress values that an auto-responder itself sets on its answers.
SUPPRESS_AUTO_REPLY_RE = re.compile(r"\b(oof|autoreply|all)\b", re.IGNORECASE)


def is_auto_reply(mail: ParsedMail) -> str | None:
    """Why ``mail`` is an automatic answer (vacation, out of office, responder), or None."""
    checks: tuple[Callable[[ParsedMail], str | None], ...] = (
        _auto_submitted,
        _autoreply_headers,
        _read_receipt,
        _auto_reply_subject,
    )
    for check in checks:
        reason = check(mail)
        if reason:
            return reason
    return None


def _auto_submitted(mail: ParsedMail) -> str | None:
    # RFC 3834: any value but "no" means a machine wrote it; comments such as
    # "auto-replied (vacation)" follow the keyword.
    value = mail.header("Auto-Submitted")
    if value is None:
        return None
    # Innermost comments: "[^)]*" ran from every "(" to the end of a value with no ")",
    # in time that grew with the square of its length.
    keyword = re.sub(r"\([^()]*\)", " ", value).strip().split(";")[0].strip().lower()
    if keyword in ("", "no"):
        return None
    return f"Auto-Submitted: {_short(value.strip())}"


def _autoreply_headers(mail: ParsedMail) -> str | None:
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        value = mail.header(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return f"{name}: {_short(value.strip())}"
    suppress = mail.header("X-Auto-Response-Suppress")
    if suppress and SUPPRESS_AUTO_REPLY_RE.search(suppress):
        return f"X-Auto-Response-Suppress: {_short(suppress.strip())}"
    loop = mail.header("X-MS-Exchange-Inbox-Rules-Loop")
    if loop is not None:  # Exchange inbox rules (out-of-office, forwarding) wrote this
        return f"X-MS-Exchange-Inbox-Rules-Loop: {_short(loop.strip())}"
    precedence = (mail.header("Precedence") or "").strip().lower()
    if precedence == "auto_reply":
        return "Precedence: auto_reply"
    return None


def _read_receipt(mail: ParsedMail) -> str | None:
    # A read receipt (RFC 8098 MDN) is a machine's answer too; it must not reopen a ticket.
    ctype = (mail.header("Content-Type") or "").lower()
    if ctype.startswith("multipart/report") and "disposition-notification" in ctype:
        return "read receipt (multipart/report; report-type=disposition-notification)"
    return None


def _auto_reply_subject(mail: ParsedMail) -> str | None:
    subject = " ".join(mail.subject.split())
    if AUTO_REPLY_SUBJECT_RE.match(subject):
        return f"Subject: {_short(subject)}"
    return None


# --- bulk ------------------------------------------------------------------------------------

BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
LIST_HEADERS = ("List-Id", "List-Unsubscribe")
# Senders that say in their address that nobody reads the answers.
NO_REPLY_LOCAL_RE = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|mailer|notifications?|"
    r"newsletters?|bounces?)(?:[-_.+].*)?$",
    re.IGNORECASE,
)


def is_bulk(mail: ParsedMail) -> str | None:
    """Why ``mail`` is bulk (lists, newsletters, no-reply senders), or None."""
    precedence = (mail.header("Precedence") or "").strip().lower()
    if precedence in BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in LIST_HEADERS:
        value = mail.header(name)
        if value is not None:
            return f"{name}: {_short(value.strip())}"
    suppress = mail.header("X-Auto-Response-Suppress")
    if suppress and suppress.strip():
        # Exchange bulk senders ask not to be answered ("DR, RN, NRN"); OOF/All were
        # taken as auto-replies above.
        return f"X-Auto-Response-Suppress: {_short(suppress.strip())}"
    local = (mail.from_address or "").rsplit("@", 1)[0]
    if local and NO_REPLY_LOCAL_RE.match(local):
        return f"no-reply sender: {mail.from_address}"
    return None


# --- the stage --------------------------------------------------------------------------------


def screen(mail: ParsedMail, envelope: Envelope, own: OwnMail) -> ScreenResult:
    """The verdict on ``mail``: loop, bounce, auto_reply, bulk (first match wins), else ok."""
    loop = is_own_mail(mail, own)
    if loop:
        return ScreenResult(Verdict.LOOP, loop)
    auto_reply = is_auto_reply(mail)
    bounce = is_bounce(mail, envelope)
    # RFC 3834 §3.3 tells responders to send from the null sender too: a null sender alone
    # does not make an out-of-office a bounce, the report's own evidence does.
    if bounce and (auto_reply is None or report_evidence(mail)):
        return ScreenResult(Verdict.BOUNCE, bounce)
    if auto_reply:
        return ScreenResult(Verdict.AUTO_REPLY, auto_reply)
    bulk = is_bulk(mail)
    if bulk:
        return ScreenResult(Verdict.BULK, bulk)
    return ScreenResult(Verdict.OK)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
