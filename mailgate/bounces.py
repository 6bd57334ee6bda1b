"""Bounce recognition for the screen stage (stage 4): is this mail a delivery failure report?

``mailgate/screen.py`` asks :func:`bounce_reason`; the ``apply`` stage can later ask
:func:`bounced_recipients` and :func:`bounced_message_ids` to match a bounce of one of our
notifications to its ticket. Pure functions over a :class:`~mailgate.values.ParsedMail`.

Standard reports (RFC 3464 ``multipart/report; report-type=delivery-status``) are read field
by field. Everything else is recognised the way real MTAs word their notices (Postfix, Exim,
qmail, Sendmail, Exchange, GroupWise, Lotus, Yahoo, AOL, SMTP32 …): a notice at the top of the
text, then a copy of the returned mail. Heuristics only ever read the notice, never the copy,
so the addresses of the returned mail are not mistaken for failed recipients.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser

from mailgate.auth import organizational_domain
from mailgate.header_values import without_controls
from mailgate.values import Envelope, ParsedMail

# --- evidence that a mail is a bounce ---------------------------------------------------

NULL_SENDERS = frozenset({"", "<>"})

# Local parts that only delivery software writes from.
DAEMON_LOCAL_PARTS = frozenset(
    {"mailer-daemon", "mailer_daemon", "postmaster", "mdaemon", "mail.delivery.system"}
)
DAEMON_NAME_RE = re.compile(
    r"^\s*(mailer[- _]?daemon|mail delivery (subsystem|system|service)|"
    r"internet mail delivery|mail administrator|postmaster)\b",
    re.IGNORECASE,
)

# Subjects the MTAs put on their notices, in their exact wording. Anchored at the start, so
# that a merchant who forwards a bounce ("Fwd: Undeliverable: …") to ask about it still opens
# a ticket. Nothing a merchant would write about their own troubles: in a shop "Delivery
# failed" is a parcel, and "Mail delivery problem" is a complaint about the shop's mail (the
# MTAs that use such plain subjects send from MAILER-DAEMON or postmaster, caught above).
BOUNCE_SUBJECT_RE = re.compile(
    r"^\s*(?:"
    r"(?:undeliverable|unzustellbar|onbestelbaar|nelivrabil|niedostarczalne|non remis|"
    r"não é possível entregar|não entregue|non recapitabile)\s*:|"
    r"undeliverable mail|undelivered mail returned to sender|returned mail\s*[:\-]|"
    r"mail delivery failed\s*:|mail delivery warning|mail (?:could not|couldn't) be delivered|"
    r"mail failed, returning|failed mail\s*:|mail system error - returned mail|"
    r"delivery status notification|delivery notification: delivery has failed|"
    r"delivery report \((?:failure|delay)|failure notice|non-?delivery(?: report)?\s*:|"
    r"permanent delivery failure|message delayed|delayed mail \(still being retried|"
    r"warning: message .{0,40}(?:delayed|not yet been delivered)|"
    r"your message to \S+ could not be delivered"
    r")",
    re.IGNORECASE,
)

# Sentences only delivery software writes at the top of its notice. Looked for only in the
# first lines of the body (NOTICE_HEAD_LINES), and never generic ones ("unable to deliver"):
# merchants write about parcels the courier could not deliver.
BOUNCE_BODY_RE = re.compile(
    r"("
    r"your message (?:could not|cannot|can't|was not|has not) (?:be |been )?delivered to|"
    r"could not be delivered to (?:one or more|all|the following)|"
    r"did not reach the following recipient|could not deliver (?:the |your )?message to the "
    r"following|delivery to the following recipients? "
    r"(?:failed|has been delayed)|following (?:address|recipient)(?:es|s|\(es\)|\(s\))? "
    r"(?:failed|could not be delivered|had permanent fatal errors)|"
    r"message was created automatically by mail delivery software|"
    r"this is the (?:postfix|qmail-send|mail system) (?:program )?at host|"
    r"i wasn't able to deliver your message|non-delivery report|"
    r"n'a pas pu (?:etre|être) (?:delivre|délivré|remis)"
    r")",
    re.IGNORECASE,
)
NOTICE_HEAD_LINES = 8

# Evidence that a report only warns about a delay; the mail may still arrive.
DELAY_RE = re.compile(
    r"("
    r"\bdelay(ed)?\b|not yet been delivered|still being retried|will (continue|keep) (to )?try|"
    r"will be retried|attempts will continue|has been postponed|will retry|"
    r"this is a warning message only|do not need to resend|temporary failure"
    r")",
    re.IGNORECASE,
)

# --- where the notice ends and the copy of the returned mail begins --------------------

# The marker's own line only: with \s, the decoration before it also ran across line ends,
# and a notice of many short lines ("\n>" ten thousand times) took time in the square of
# its length to search.
RETURNED_MARKER_RE = re.compile(
    r"^[ \t\-=*>|]*("
    r"below this line is a copy|below the next line is a copy|"
    r"this is a copy of the message|copy of the (original )?message|"
    r"original message (follows|as received|attached)|original message|"
    r"(start of )?returned (message|mail)|unsent message follows|"
    r"(the )?header and top .{0,20} of the message|"
    r"the first \d+ lines of your original message|"
    r"here is a copy of the first part|message headers follow|"
    r"original message header|rejected message|forwarded message|"
    r"content-type:\s*(message/rfc822|text/rfc822-headers)"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
# A copy pasted without a marker starts with its trace headers.
# At a line start, spaces and tabs only: "\s*" ran on over line ends from every line start
# and took time in the square of the lines of a notice with many blank lines.
RETURNED_HEADERS_RE = re.compile(
    r"^>?[ \t]*(Return-Path|Received):\s", re.IGNORECASE | re.MULTILINE
)

RETURNED_TYPES = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    }
)
STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})

# --- failed recipients --------------------------------------------------------------------

ADDRESS = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
# Searched on its own, an address starts where its run of local-part characters does:
# tried at each character of a long run without "@", the search took time in the square
# of the run's length. (In the patterns below, text before it anchors it already.)
_ADDRESS_START = r"(?<![A-Za-z0-9!#$%&'*+/=?^_`{|}~.-])"
ADDRESS_RE = re.compile(_ADDRESS_START + ADDRESS)
BARE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")

# A DSN per-recipient field: "Final-Recipient: rfc822; someone@example.com".
DSN_FIELD_RE = re.compile(r"^(original|final)-recipient\s*:", re.IGNORECASE | re.MULTILINE)
DSN_ACTION_RE = re.compile(r"^action\s*:\s*(\w+)", re.IGNORECASE | re.MULTILINE)
DSN_FAILED_ACTIONS = frozenset({"failed", "failure", "delayed"})
# Original-Recipient is the address as the sender wrote it (before aliases): the one to match.
DSN_RECIPIENT_FIELDS = ("original-recipient", "final-recipient")

# Lines or sentences that name one failed recipient.
RECIPIENT_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern, re.IGNORECASE | re.MULTILINE)
    for pattern in (
        # qmail, Postfix, Yahoo, Sendmail: "<user@host>: reason" at the start of a line
        rf"^\s{{0,8}}\*?\s*<({ADDRESS})>\s*(?::|\.\.\.|\(|$)",
        # Exim: "user@host:" alone on its line, the reason indented below it
        rf"^\s{{0,4}}({ADDRESS}):\s*$",
        # "Failed Recipient: x", "Unknown user: x", "Error-for: x", "Intended recipient: x"…
        # (but not the To:/From: lines of a summary of the returned mail)
        rf"^[ \t]*(?!(?:to|cc|bcc|from|sender|reply-to|return-path|message-id|in-reply-to|"
        rf"references|contact|system contact|x-[\w-]+)\s*:)"
        rf"[A-Za-z][\w' -]{{0,40}}:\s*<?\"?({ADDRESS})",
        # "… addressed to 'x'", "The address to which your message was addressed, x,"
        rf"addressed(?: to)?,?\s*['\"<]?({ADDRESS})",
        rf"(?:message|mail|e-?mail) to:?\s*['\"<]?({ADDRESS})['\">]?\s*"
        rf"(?:could not|cannot|can't|couldn't|was not|has not|failed|is undeliverable|"
        rf"has reached)",
        rf"(?:could not be delivered|delivery failed|unable to deliver(?: your| the)? message|"
        rf"undeliverable|n'a pas pu etre delivre|postponed)\s+(?:to|a|à)\s*:?\s*\n?\s*"
        rf"['\"<]?({ADDRESS})",
        rf"delivery of (?:e-?mail|your message) to this address\s+['\"<]?({ADDRESS})",
        rf"(?:quota violation for|local address|mailbox)\s+<?({ADDRESS})",
        rf"^[ \t]*<?({ADDRESS})>?\s*(?:\.\.\.|:|-)?\s*(?:user unknown|unknown user|no such user|"
        rf"mailbox (?:unavailable|full|is full)|addressee unknown|not found|unknown host)",
        rf"^[ \t]*({ADDRESS})\s+on\s+\w{{3}},",  # Exchange: "user@host on Fri, 18 Oct 2002"
    )
)

EXPANDED_RE = re.compile(
    rf"{_ADDRESS_START}({ADDRESS})\s*\n\s*\(expanded from:?\s*<?{ADDRESS}>?\)", re.I
)

# A sentence that announces a list of failed recipients on the next lines.
RECIPIENT_LIST_RE = re.compile(
    r"(following (e-?mail )?(address(es|\(es\))?|recipients?(\(s\))?|users?|destinations?)"
    r"|not delivered to the following|delivery to the following|"
    r"failed (recipients?|addresses)|(could not be|was not|were not) delivered to:?$|"
    r"message not delivered to the following|address\(es\) failed|"
    r"address(es)? to which the message has not (yet )?been delivered)"
    r"[^\n]*\n",
    re.IGNORECASE | re.MULTILINE,
)
RECIPIENT_LIST_LINES = 12

# Addresses delivery software signs with; never a failed recipient.
ROLE_LOCAL_PARTS = DAEMON_LOCAL_PARTS | {"abuse", "hostmaster", "root", "mailman"}

MESSAGE_ID_HEADER_RE = re.compile(
    r"^[> \t]*message-id\s*:\s*\n?\s*<([^<>\s]+@[^<>\s]+)>", re.IGNORECASE | re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class _Report:
    """A bounce taken apart: the notice, the DSN fields, and the returned mail's headers."""

    notice: str
    status: tuple[str, ...]
    returned: tuple[str, ...]


# --- is it a bounce? -------------------------------------------------------------------------


def bounce_reason(mail: ParsedMail, envelope: Envelope) -> str | None:
    """The evidence that ``mail`` is a delivery failure or delay report, or None.

    A delay warning is a bounce too (nothing to answer), and its reason starts with "delay".
    """
    evidence = report_evidence(mail) or null_sender(mail, envelope)
    if evidence is None:
        return None
    return f"delay: {evidence}" if is_delay(mail) else evidence


def report_evidence(mail: ParsedMail) -> str | None:
    """What in the mail itself says it is a delivery report (not the envelope), or None."""
    checks = (
        _report_type,
        _failed_recipients_header,
        _daemon_sender,
        _bounce_subject,
        _bounce_body,
    )
    for check in checks:
        reason = check(mail)
        if reason:
            return reason
    return None


def null_sender(mail: ParsedMail, envelope: Envelope) -> str | None:
    """Whether the mail came from the null sender, which RFC 5321 §4.5.5 reserves for
    notifications. ``None`` in the envelope means "unknown" (a file import): then the
    Return-Path that the delivering MTA wrote stands in for it."""
    if envelope.mail_from is not None:
        if envelope.mail_from.strip() in NULL_SENDERS:
            return "null envelope sender (MAIL FROM:<>)"
        return None
    if _return_path_is_null(mail):
        return "null sender (Return-Path: <>)"
    return None


def _return_path_is_null(mail: ParsedMail) -> bool:
    return any(value.strip() in NULL_SENDERS for value in mail.header_all("Return-Path"))


def _report_type(mail: ParsedMail) -> str | None:
    ctype = (mail.header("Content-Type") or "").lower()
    if ctype.startswith("multipart/report") and (
        "delivery-status" in ctype or "report-type" not in ctype
    ):
        return "multipart/report; report-type=delivery-status"
    if any(att.content_type.lower() in STATUS_TYPES for att in mail.attachments):
        return "message/delivery-status part"
    auto = (mail.header("Auto-Submitted") or "").lower()
    if "failure" in auto:  # Sendmail: "Auto-Submitted: auto-generated (failure)"
        return f"Auto-Submitted: {mail.header('Auto-Submitted')}"
    return None


def _failed_recipients_header(mail: ParsedMail) -> str | None:
    value = mail.header("X-Failed-Recipients")  # Exim
    return f"X-Failed-Recipients: {value}" if value else None


def _daemon_sender(mail: ParsedMail) -> str | None:
    address = mail.from_address or ""
    local = address.rsplit("@", 1)[0].lower()
    if local in DAEMON_LOCAL_PARTS:
        return f"From: {address}"
    raw_from = mail.header("From") or ""
    if DAEMON_NAME_RE.match(mail.from_name or "") or DAEMON_NAME_RE.match(raw_from.strip('"')):
        return f"From: {raw_from.strip()}"
    # "From: Mail System <>": an empty address is only ever written by software.
    if re.search(r"<\s*>", raw_from):
        return f"empty From address: {raw_from.strip()}"
    return None


def _bounce_subject(mail: ParsedMail) -> str | None:
    subject = " ".join(mail.subject.split())
    if BOUNCE_SUBJECT_RE.match(subject):
        return f"Subject: {_short(subject)}"
    return None


def _bounce_body(mail: ParsedMail) -> str | None:
    head = _head_lines(_body(mail), NOTICE_HEAD_LINES)
    match = BOUNCE_BODY_RE.search(head)
    return f"notice text: {match.group(0)!r}" if match else None


def is_delay(mail: ParsedMail) -> bool:
    """True when the report only warns of a delay (RFC 3464 ``Action: delayed``, or words)."""
    report = _take_apart(mail)
    actions = {a.lower() for text in report.status for a in DSN_ACTION_RE.findall(text)}
    if actions & {"failed", "failure"}:
        return False
    if "delayed" in actions:
        return True
    subject = " ".join(mail.subject.split())
    if DELAY_RE.search(subject):
        return True
    return bool(DELAY_RE.search(_head_lines(report.notice, 25)))


# --- whom did it fail for? -------------------------------------------------------------------


def bounced_recipients(mail: ParsedMail) -> tuple[str, ...]:
    """The failed recipient addresses a bounce names, in order of appearance.

    From the RFC 3464 fields when present (``Original-Recipient``, else ``Final-Recipient``, of
    recipients whose ``Action`` is failed or delayed), else from the notice text.
    """
    report = _take_apart(mail)
    found = _dsn_recipients(report.status)
    if found is None:  # no per-recipient DSN fields: read the notice
        found = _notice_recipients(mail, report)
    noise = _noise_addresses(mail)
    return _unique(a for a in found if a.lower() not in noise and not _is_role(a))


def _dsn_recipients(status: Iterable[str]) -> list[str] | None:
    """Recipients of the DSN blocks whose Action is failed or delayed; None without blocks."""
    found: list[str] = []
    blocks = 0
    for text in status:
        for block in re.split(r"\n\s*\n", text):
            fields = _fields(block)
            addresses = [_first_address(fields.get(name, "")) for name in DSN_RECIPIENT_FIELDS]
            address = next((a for a in addresses if a), None)
            if address is None:
                continue
            blocks += 1
            action = (fields.get("action") or "failed").split()[0].lower()
            if action in DSN_FAILED_ACTIONS:
                found.append(address)
    return found if blocks else None


def _fields(block: str) -> dict[str, str]:
    """RFC 822 style fields of one DSN block (continuation lines unfolded)."""
    fields: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            fields[name] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            name = key.strip().lower()
            fields.setdefault(name, value.strip())
    return fields


def _notice_recipients(mail: ParsedMail, report: _Report) -> list[str]:
    notice = report.notice
    found: list[str] = []
    for pattern in RECIPIENT_PATTERNS:
        found.extend(m.group(1) for m in pattern.finditer(notice))
    for match in RECIPIENT_LIST_RE.finditer(notice):
        found.extend(_listed_recipients(mail, report, notice[match.end() :]))
    # Sendmail names the alias it expanded: report the address that was written to.
    expanded = {m.group(1).lower() for m in EXPANDED_RE.finditer(notice)}
    found = [a for a in found if _clean_address(a).lower() not in expanded]
    return sorted(_unique(found), key=lambda a: _position(notice, a))


def _listed_recipients(mail: ParsedMail, report: _Report, text: str) -> list[str]:
    """Recipients listed one per line after "the following recipients …" (blank lines skip)."""
    found: list[str] = []
    names_allowed = True  # bare user names only at the head of the list, before any prose
    for line in text.splitlines()[:RECIPIENT_LIST_LINES]:
        stripped = line.strip().strip("*").strip()
        if not stripped:
            if found:
                break
            continue
        if re.match(r"^[-=*_|]{3,}", stripped) or RETURNED_MARKER_RE.match(stripped):
            break
        addresses = ADDRESS_RE.findall(stripped)
        if addresses:
            # '"user@host" <user@host>' names one recipient twice; the first is enough.
            found.append(addresses[0])
            continue
        # A bare user name alone on its line, or followed by a reason after a wide gap.
        bare = re.match(r"^([^\s:]+)(?:\s{2,}\S.*)?$", stripped)
        if names_allowed and bare and BARE_NAME_RE.match(bare.group(1)):
            found.extend(_qualify(mail, report, bare.group(1)))
        names_allowed = False
    return found


def _qualify(mail: ParsedMail, report: _Report, local: str) -> list[str]:
    """A bare user name (AOL, Yale) made an address: as the returned mail was addressed, or
    at the reporting host's domain."""
    pattern = re.compile(rf"(?<![\w.+-]){re.escape(local)}@[A-Za-z0-9.-]+\.[A-Za-z]+", re.I)
    seen = _unique(m.group(0) for text in report.returned for m in pattern.finditer(text))
    if seen:
        return list(seen)
    domain = (mail.from_address or "").rsplit("@", 1)[-1]
    if "." not in domain:
        return []
    # A guess: the reporting host is a machine of the recipient's own organisation.
    return [f"{local}@{organizational_domain(domain)}"]


def _noise_addresses(mail: ParsedMail) -> set[str]:
    """Addresses a notice names that are not failed recipients: who sent it, and to whom.

    The returned mail's own From is not noise: people bounce on their own list posts."""
    return {a.lower() for a in (mail.from_address, *mail.to, *mail.reply_to) if a}


def _is_role(address: str) -> bool:
    return address.rsplit("@", 1)[0].lower() in ROLE_LOCAL_PARTS


# --- which of our mails came back? ----------------------------------------------------------


def bounced_message_ids(mail: ParsedMail) -> tuple[str, ...]:
    """Message-IDs (without brackets) of the mail a bounce returns, best evidence first.

    From the attached copy (``message/rfc822`` or ``text/rfc822-headers``), then the headers
    quoted in the text, then the bounce's own ``In-Reply-To``/``References``, which some MTAs
    (Exchange, Gmail) point at the original.
    """
    report = _take_apart(mail)
    found: list[str] = []
    for text in report.returned:
        headers = HeaderParser().parsestr(_strip_quote_marks(text), headersonly=True)
        value = str(headers.get("Message-ID") or "")
        found.extend(re.findall(r"<([^<>\s]+@[^<>\s]+)>", value))
        found.extend(MESSAGE_ID_HEADER_RE.findall(text))
    found.extend(MESSAGE_ID_HEADER_RE.findall(report.notice))
    for text in report.status:  # some gateways paste the returned headers into the report
        found.extend(MESSAGE_ID_HEADER_RE.findall(text))
    found.extend((*mail.in_reply_to, *mail.references))
    own = (mail.message_id or "").strip("<>").lower()
    ids: dict[str, str] = {}
    for found_id in found:
        mid = without_controls(found_id).strip()
        ids.setdefault(mid.lower(), mid)
    return tuple(mid for key, mid in ids.items() if key and key != own)


# --- taking a report apart -------------------------------------------------------------------


def _take_apart(mail: ParsedMail) -> _Report:
    """Split a bounce into notice, DSN fields and returned copy, however the parser laid
    out its parts (attachments, or all in the body text)."""
    status: list[str] = []
    returned: list[str] = []
    extra_notices: list[str] = []
    for att in mail.attachments:
        ctype = att.content_type.lower()
        if not ctype.startswith(("text/", "message/", "multipart/")):
            continue  # images and files say nothing about delivery
        text = _decode(att.content)
        if ctype in STATUS_TYPES:
            status.append(text)
        elif ctype in RETURNED_TYPES:
            nested = _nested_report(att.content)
            if nested is None:
                returned.append(text)
            else:  # a gateway wrapped the real report in a message/rfc822 of its own
                status.extend(nested.status)
                returned.extend(nested.returned)
                extra_notices.append(nested.notice)
        elif ctype.startswith(("text/", "multipart/")) and DSN_FIELD_RE.search(text):
            status.append(text)  # a report whose MIME structure the parser could not read
    body = _body(mail)
    notice, copy = _split_notice(body)
    notice = "\n\n".join((notice, *extra_notices))
    if copy:
        returned.append(copy)
    # A parser may have put the DSN fields into the text: take them from there too.
    if not status and DSN_FIELD_RE.search(body):
        status.append(body)
    return _Report(notice=notice, status=tuple(status), returned=tuple(returned))


def _nested_report(content: bytes) -> _Report | None:
    """The report inside an attached message, when that message is itself a DSN."""
    inner = message_from_bytes(content)
    if inner.get_content_type() != "multipart/report":
        return None
    status: list[str] = []
    returned: list[str] = []
    notice = ""
    for part in inner.walk():
        ctype = part.get_content_type()
        payload = part.get_payload()
        if ctype in STATUS_TYPES and isinstance(payload, list):
            status.append("\n".join(_message_texts(payload)))
        elif ctype in RETURNED_TYPES and isinstance(payload, list):
            returned.extend(_message_texts(payload))
        elif ctype in RETURNED_TYPES:
            returned.append(_text_of(part))
        elif ctype == "text/plain" and not notice:
            raw = part.get_payload(decode=True)
            notice = _decode(raw) if isinstance(raw, bytes) else ""
    return _Report(notice=notice, status=tuple(status), returned=tuple(returned))


def _message_texts(parts: Iterable[object]) -> list[str]:
    return [_text_of(part) for part in parts if isinstance(part, Message)]


def _text_of(part: Message) -> str:
    """A part as text, written out from its bytes: ``as_string`` raises on 8-bit text in a
    part that says it is ASCII, which returned mails often are."""
    return _decode(part.as_bytes())


def _split_notice(text: str) -> tuple[str, str]:
    """The notice text, and the copy of the returned mail after it (may be empty)."""
    cut = len(text)
    marker = RETURNED_MARKER_RE.search(text)
    if marker and text[: marker.start()].strip():  # not a marker with nothing above it
        cut = marker.start()
    headers = RETURNED_HEADERS_RE.search(text)
    if headers and headers.start() < cut:
        cut = headers.start()
    return text[:cut], text[cut:]


def _body(mail: ParsedMail) -> str:
    if mail.body_text.strip():
        return mail.body_text
    return _html_to_text(mail.body_html or "")


def _html_to_text(html: str) -> str:
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", html)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("&nbsp;", " ").replace("&lt;", "<").replace("&gt;", ">")


def _head_lines(text: str, count: int) -> str:
    """The first ``count`` lines that carry words (rules of dashes and stars do not count)."""
    lines = [line for line in text.splitlines() if re.search(r"[^\W_]", line)]
    return "\n".join(lines[:count])


def _strip_quote_marks(text: str) -> str:
    return re.sub(r"(?m)^> ?", "", text.lstrip("\r\n"))


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("latin-1")


def _first_address(value: str) -> str | None:
    match = ADDRESS_RE.search(value)
    return match.group(0).strip(".") if match else None


def _clean_address(address: str) -> str:
    """Drop the X.400 and type prefixes Exchange glues on: "SMTP=user@host", "rfc822;…"."""
    address = address.strip().strip(".,;:'\"<>()[]")
    return re.sub(r"^(?:smtp|rfc822)[=:;]", "", address, flags=re.IGNORECASE)


def _position(text: str, address: str) -> int:
    index = text.lower().find(address.lower())
    return index if index >= 0 else len(text)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for item in items:
        clean = _clean_address(item)
        if clean and clean.lower() not in seen:
            seen[clean.lower()] = clean
    return tuple(seen.values())


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
