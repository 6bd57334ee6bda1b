"""Stage 3, parse: raw bytes → ``ParsedMail`` (addresses, subject, text, reply, attachments).

The MIME tree is read by the stdlib's compat32 parser, exactly as mail-parser's
``MailParser.from_bytes`` reads it (``mime_reader``); mail-parser's hardened address and
date readers handle the values our fast paths do not, and its recovery of parts lost
in an epilogue is reproduced. mail-parser's full ``parse()`` is not run: it parses every
Received header, decodes every header twice and builds JSON views we never use, which
costs more than all of ``parse_mail`` (see bench/parse_speed.py), and it drops bytes its
charset cannot read, where we guess the charset a human would. Nothing here writes, and
nothing raises but ``ParseFailure`` for bytes that hold no mail at all.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from email.message import Message
from email.utils import parseaddr

from mailgate.charsets import decode_text
from mailgate.errors import ParseFailure
from mailgate.header_values import (
    MAX_ADDRESS_CHARS,
    decode_header_value,
    first_language,
    parse_addresses,
    parse_date,
    parse_message_ids,
    unicode_value,
)
from mailgate.html_text import html_to_text
from mailgate.mime_parts import MailParts, read_parts
from mailgate.mime_reader import ReadMessage, read_message
from mailgate.quoting import extract_reply
from mailgate.values import ParsedMail

# Headers the receiving side adds on the way in: two MX hosts delivering one mail add
# different ones, so they are left out of the duplicate-detection digest.
_TRACE_HEADERS = frozenset(
    {
        b"received",
        b"x-received",
        b"return-path",
        b"delivered-to",
        b"x-delivered-to",
        b"x-original-to",
        b"envelope-to",
        b"x-envelope-to",
        b"x-envelope-from",
        b"authentication-results",
        b"x-original-authentication-results",
        b"received-spf",
        b"x-virus-scanned",
        b"x-virus-status",
    }
)
_TRACE_PREFIXES = (b"arc-", b"x-spam-", b"x-virus-")
_BLANK = b" \t\r\n\x00"
_NOT_BLANK = re.compile(rb"[^ \t\r\n\x00]")
_MAILBOX = re.compile(r"[\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
FROM_REPAIRED = "from-repaired"
_LONGEST_PLACEHOLDER = 300
_PLACEHOLDER = re.compile(
    r"\bHTML\b.{0,80}\b(?:client|reader|viewer|program|capable|enabled|compatible|support)"
    r"|(?:client|reader|program)\b.{0,60}\b(?:support|display|read|view)s?\b.{0,20}\bHTML\b"
    r"|^\s*(?:view|read|open) (?:this|the) (?:e-?mail|message|newsletter)"
    r" (?:online|in your browser)",
    re.I | re.S,
)
_SAME_TEXT = 0.8  # share of an HTML body's words found in the plain one: the same text


def parse_mail(raw: bytes) -> ParsedMail:
    """How Mailgate reads ``raw``; best effort on broken mail.

    Raises ``ParseFailure`` only when ``raw`` holds nothing at all (empty or blank).
    """
    raw = bytes(raw)
    if _NOT_BLANK.search(raw) is None:  # not raw.strip(): that would copy the whole mail
        raise ParseFailure("the message is empty")
    try:
        read = read_message(raw)
        parts = _read_parts(read, read.defects)
        return _parsed(raw, read.message, parts, read.defects)
    except Exception as error:
        # A bug or an input the stdlib chokes on must not lose the mail: keep it as
        # text, and say so (the property tests assert this path is never taken).
        return _unreadable(raw, f"parser-error:{type(error).__name__}")


def _read_parts(read: ReadMessage, defects: list[str]) -> MailParts:
    if read.flat:
        body = read.message.get_payload()
        text = (
            decode_text(body.encode("utf-8", "surrogateescape")).text
            if isinstance(body, str)
            else ""
        )
        return MailParts(plain=[text.replace("\x00", "")])
    try:
        parts = read_parts(read.message, read.set_aside)
    except RecursionError:
        defects.append("nesting-too-deep")
        parts = MailParts()
    defects.extend(d for d in parts.defects if d not in defects)
    return parts


def _parsed(raw: bytes, message: Message, parts: MailParts, defects: list[str]) -> ParsedMail:
    raw_headers = [
        (str(name), value if isinstance(value, str) else str(value))
        for name, value in message.raw_items()
    ]
    by_name: dict[str, list[str]] = {}
    for name, value in raw_headers:
        by_name.setdefault(name.strip().lower(), []).append(value)

    charset = _body_charset(message)
    from_defects: list[str] = []
    first_from = next(iter(by_name.get("from", [])), None)
    if first_from is not None and len(first_from) > MAX_ADDRESS_CHARS:
        first_from = first_from[:MAX_ADDRESS_CHARS]  # what the readers below can afford
        from_defects.append("address-header-cut")
    from_pairs = parse_addresses([first_from] if first_from else [], from_defects, charset)
    if not from_pairs and first_from:
        from_pairs = _repaired_from(first_from, from_defects, charset)
    if from_defects:
        # Which part of a broken From the parser kept is a guess: identify never matches
        # such an address to a registered user (see mailgate/from_check.py).
        defects.extend([*from_defects, FROM_REPAIRED])
    from_name, from_address = _sender(from_pairs, defects)
    if not from_pairs and first_from:
        # "MAILER DAEMON <>": no address, but the name is what a reader sees.
        raw_from = unicode_value(first_from, charset)
        from_name = decode_header_value(parseaddr(raw_from)[0])
    if len(by_name.get("from", [])) > 1:
        defects.append("several-from-headers")
    subjects = by_name.get("subject", [])
    if len(subjects) > 1:
        defects.append("several-subject-headers")

    body_text = _body_text(parts)
    body_html = "\n".join(parts.html) if parts.html else None
    # An empty text/plain counts as none, and so does one that only says to read the HTML.
    from_html = body_html is not None and (not body_text or _is_placeholder(body_text))
    if from_html:
        body_text = html_to_text(body_html or "")
    reply_text = extract_reply(
        body_text,
        body_html if from_html else None,
        sender=" ".join(filter(None, (from_name, from_address))),
    )
    return ParsedMail(
        message_id=next(iter(parse_message_ids(_first(by_name, "message-id"))), None),
        from_address=from_address,
        from_name=from_name,
        to=_addresses(by_name, "to", defects, charset),
        cc=_addresses(by_name, "cc", defects, charset),
        reply_to=_addresses(by_name, "reply-to", defects, charset),
        subject=decode_header_value(subjects[0], charset) if subjects else "",
        date=parse_date(_first(by_name, "date")),
        in_reply_to=parse_message_ids(_first(by_name, "in-reply-to")),
        references=parse_message_ids(" ".join(by_name.get("references", []))),
        body_text=body_text,
        reply_text=reply_text,
        body_html=body_html,
        attachments=tuple(parts.attachments),
        headers=tuple(
            (unicode_value(name).strip(), decode_header_value(value, charset))
            for name, value in raw_headers
        ),
        content_digest=content_digest(raw),
        from_header_count=len(by_name.get("from", [])),
        defects=tuple(dict.fromkeys(defects)),
        content_language=first_language(_first(by_name, "content-language")),
    )


def _repaired_from(raw: str, defects: list[str], charset: str | None) -> list[tuple[str, str]]:
    """The one mailbox a broken From shows a reader: a whole "Name <addr>" sent as one
    encoded word, an unclosed "<addr", a stray ";" after it. Noted as a defect, so the
    address is shown but never trusted as a known user's (see from_check)."""
    decoded = decode_header_value(raw, charset)
    found = parse_addresses([decoded], []) if decoded != raw.strip() else []
    if not found:
        addresses = {match.lower() for match in _MAILBOX.findall(decoded)}
        if len(addresses) != 1:
            return []
        name = decoded.split("<", 1)[0] if "<" in decoded else ""
        found = [(name.strip().strip("\"'").strip(), addresses.pop())]
    defects.append("from-unreadable-as-written")
    return found


def _is_placeholder(text: str) -> bool:
    """A plain version that only tells the reader to look at the HTML one ("This is an
    HTML message; please use an HTML-capable client.", "View this email in your browser")."""
    return len(text) <= _LONGEST_PLACEHOLDER and _PLACEHOLDER.search(text) is not None


def _body_charset(message: Message) -> str | None:
    """The charset the mail's first text part declares (for raw 8-bit header bytes)."""
    try:
        for part in message.walk():
            if part.get_content_maintype() == "text":
                charset = part.get_param("charset")
                return charset if isinstance(charset, str) and charset.isascii() else None
            if not part.is_multipart() and part is not message:
                return None
    except (LookupError, UnicodeError, ValueError, TypeError, IndexError, RecursionError):
        pass  # a broken Content-Type: no hint
    return None


def _body_text(parts: MailParts) -> str:
    """The text a mail client shows: the plain bodies, with any HTML body that is not a
    version of a plain one read as text in its place; failing those, inline text files."""
    plain = list(parts.plain)
    if any(plain) and parts.loose_html:
        words = set("\n".join(plain).split())
        for position, html in reversed(parts.loose_html):
            text = html_to_text(html)
            # Some mailers put the two versions of one body side by side in a
            # multipart/mixed: a second rendering of the plain text is not shown twice.
            html_words = text.split()
            if sum(word in words for word in html_words) < _SAME_TEXT * len(html_words):
                plain.insert(position, text)
    text = "\n\n".join(text for text in plain if text)
    if not text and not parts.html:
        text = "\n\n".join(text for text in parts.inline_text if text)
    return text


def _unreadable(raw: bytes, defect: str) -> ParsedMail:
    text = decode_text(raw).text.replace("\x00", "")
    return ParsedMail.unread(text=text, content_digest=content_digest(raw), defects=(defect,))


def _first(by_name: dict[str, list[str]], name: str) -> str | None:
    values = by_name.get(name)
    return values[0] if values else None


def _sender(pairs: list[tuple[str, str]], defects: list[str]) -> tuple[str, str | None]:
    """Display name and address of the From mailbox; no address when it is ambiguous."""
    if not pairs:
        defects.append("no-usable-from")
        return "", None
    if len({address for _, address in pairs}) > 1:
        # Several mailboxes in one From: which one wrote it cannot be told, and the
        # choice must not be the sender's to make.
        defects.append("several-from-addresses")
        return pairs[0][0], None
    return pairs[0]


def _addresses(
    by_name: dict[str, list[str]], name: str, defects: list[str], charset: str | None
) -> tuple[str, ...]:
    pairs = parse_addresses(by_name.get(name, []), defects, charset)
    return tuple(dict.fromkeys(address for _, address in pairs))


def content_digest(raw: bytes, chunk_size: int = 1 << 20) -> str:
    """SHA-256 (hex) of the mail without trace headers, line endings normalised.

    The same mail delivered through two MX hosts (each adding Received,
    Authentication-Results, X-Spam-… headers) gives the same digest.

    The body is hashed a chunk at a time: a whole-mail ``replace`` or ``partition``
    would copy a 25 MB attachment three times over (bench/README.md, Memory). The
    digest is the one of the whole normalised mail, whatever ``chunk_size``.
    """
    digest = hashlib.sha256()
    chunks = _normalised_chunks(raw, chunk_size)
    head = bytearray()
    body_start = b""
    envelope_checked = False
    for chunk in chunks:  # the headers: up to the first blank line
        searched_from = max(0, len(head) - 1)
        head += chunk
        if not envelope_checked:
            if len(head) < 5 and b"From "[: len(head)] == head:
                continue  # too short yet to tell
            if head.startswith(b"From "):  # an mbox envelope line, not part of the mail
                newline = head.find(b"\n")
                if newline == -1:
                    continue
                del head[: newline + 1]
            envelope_checked, searched_from = True, 0
        blank = head.find(b"\n\n", searched_from)
        if blank != -1:
            body_start = bytes(head[blank + 2 :])
            del head[blank:]
            break
    else:
        if not envelope_checked and head.startswith(b"From "):
            head.clear()  # an envelope line and nothing else
    for field in _header_fields(bytes(head)):
        name = field.split(b":", 1)[0].strip().lower()
        if name in _TRACE_HEADERS or name.startswith(_TRACE_PREFIXES):
            continue
        digest.update(field.replace(b"\n", b"") + b"\n")
    digest.update(b"\n")
    held = b""  # the body's trailing newlines are left out: held until more text follows
    for chunk in itertools.chain((body_start,), chunks):
        text = chunk.rstrip(b"\n")
        if text:
            digest.update(held)
            digest.update(text)
            held = b""
        held += chunk[len(text) :]
    return digest.hexdigest()


def _normalised_chunks(raw: bytes, chunk_size: int) -> Iterator[bytes]:
    """``raw`` with CRLF and lone CR as LF, in pieces of about ``chunk_size`` bytes."""
    view = memoryview(raw)
    carry = b""
    for start in range(0, len(raw), chunk_size):
        piece = carry + view[start : start + chunk_size].tobytes()
        carry = b""
        if piece.endswith(b"\r") and start + chunk_size < len(raw):
            piece, carry = piece[:-1], b"\r"  # its LF, if any, starts the next piece
        if b"\r" in piece:
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        yield piece


def _header_fields(head: bytes) -> list[bytes]:
    fields: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        else:
            fields.append(line)
    return fields
