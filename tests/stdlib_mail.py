"""A stand-in for ``mailgate.parse.parse_mail`` built on the stdlib ``email`` package.

The screen tests need ``ParsedMail`` values while the parser is written alongside them;
this fills the fields the way a MIME reader would: text parts joined into ``body_text``,
everything else (a ``message/rfc822`` copy, a ``message/delivery-status`` report, files)
as attachments. It does no quote stripping and no HTML rendering beyond dropping tags.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from mailgate.values import ParsedAttachment, ParsedMail


def _header_text(value: object) -> str:
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        return str(value)


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _text_of(part: Message) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        return _payload_bytes(part).decode(charset, errors="replace")
    except LookupError:
        return _payload_bytes(part).decode("latin-1")


def _walk(part: Message, texts: list[str], htmls: list[str], atts: list[ParsedAttachment]) -> None:
    ctype = part.get_content_type()
    payload = part.get_payload()
    subparts = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    if isinstance(payload, list) and ctype in (
        "message/delivery-status",
        "message/global-delivery-status",
    ):
        content = "\n".join(block.as_string() for block in subparts).encode()
        atts.append(ParsedAttachment("delivery-status.txt", ctype, content))
    elif subparts and ctype.startswith("message/"):
        atts.append(ParsedAttachment("message.eml", ctype, subparts[0].as_bytes()))
    elif isinstance(payload, list):
        for sub in subparts:
            _walk(sub, texts, htmls, atts)
    elif ctype.startswith("text/") and part.get_content_disposition() == "attachment":
        name = part.get_filename() or "file.txt"
        atts.append(ParsedAttachment(name, ctype, _payload_bytes(part)))
    elif ctype == "text/plain":
        texts.append(_text_of(part))
    elif ctype == "text/html":
        htmls.append(_text_of(part))
    else:
        atts.append(
            ParsedAttachment(
                part.get_filename() or "file",
                ctype,
                _payload_bytes(part),
                content_id=(part.get("Content-ID") or "").strip("<> ") or None,
                inline=part.get_content_disposition() == "inline",
            )
        )


def _ids(value: object) -> tuple[str, ...]:
    return tuple(re.findall(r"<([^<>\s]+)>", str(value or "")))


def _addresses(msg: Message, name: str) -> tuple[str, ...]:
    values = [_header_text(v) for v in msg.get_all(name, [])]
    return tuple(a.lower() for _, a in getaddresses(values) if "@" in a)


def stdlib_parsed(raw: bytes) -> ParsedMail:
    """``raw`` read into a ``ParsedMail`` with the stdlib only (``reply_text`` = whole text)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    texts: list[str] = []
    htmls: list[str] = []
    atts: list[ParsedAttachment] = []
    _walk(msg, texts, htmls, atts)
    html = "\n".join(htmls) or None
    body = "\n\n".join(texts)
    if not body.strip() and html:
        body = re.sub(r"<[^>]+>", " ", html)
    froms = getaddresses([_header_text(v) for v in msg.get_all("From", [])])
    from_name, from_address = froms[0] if froms else ("", "")
    try:
        date = parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        date = None
    message_ids = _ids(msg.get("Message-ID"))
    return ParsedMail(
        message_id=message_ids[0] if message_ids else None,
        from_address=from_address.lower() if "@" in from_address else None,
        from_name=from_name,
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        reply_to=_addresses(msg, "Reply-To"),
        subject=" ".join(_header_text(msg.get("Subject", "")).split()),
        date=date,
        in_reply_to=_ids(msg.get("In-Reply-To")),
        references=_ids(msg.get("References")),
        body_text=body,
        reply_text=body,
        body_html=html,
        attachments=tuple(atts),
        headers=tuple((k, _header_text(v)) for k, v in msg.items()),
        content_digest=hashlib.sha256(raw).hexdigest(),
        from_header_count=len(msg.get_all("From", [])),
        defects=tuple(type(d).__name__ for d in msg.defects),
    )
