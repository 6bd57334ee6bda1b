"""Raw bytes into the stdlib's compat32 ``Message``, safely and fast (for ``parse``).

This is how mail-parser's ``MailParser.from_bytes`` reads a mail, with two guards in
front of the stdlib parser. It checks every line against every open boundary, so deep
nesting costs seconds for a few kilobytes: such mail is read as headers plus text. And
it reads line by line, so a 150 KB screenshot is 2,000 base64 lines: base64 bodies are
re-wrapped into long lines first, which decodes to the same bytes in half the time.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser

MAX_DEPTH = 40  # deeper nesting is an attack on the parser, not a mail

_BLANK = b" \t\r\n\x00"
_HEADER_START = re.compile(rb"^[\x21-\x39\x3b-\x7e]{1,76}:")
_BOUNDARY_PARAM = re.compile(rb"boundary\s*=\s*(\"[^\"\r\n]{1,200}\"|[^\s;]{1,200})")
_CLOSING_DELIMITER = re.compile(rb"\n--([^\r\n]{1,200}?)--[ \t]*\r?(?=\n|$)")
_BASE64_TEXT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n"
_FEWEST_LINES_TO_REWRAP = 16
_CTE_HEADER = b"content-transfer-encoding"
_WRAPPED_LINE = 988  # a multiple of 4, under the 998-octet line limit of RFC 5322
_LONGEST_PART_HEADER = 4096


@dataclass(slots=True)
class ReadMessage:
    """The parsed message; ``flat`` when its MIME tree was left unread (body is text)."""

    message: Message
    flat: bool = False
    defects: list[str] = field(default_factory=list)


def read_message(raw: bytes) -> ReadMessage:
    """``raw`` parsed by the stdlib (compat32), as mail-parser does, behind the guards."""
    lowered = raw.lower()
    if _nesting_depth(lowered) > MAX_DEPTH:
        return ReadMessage(_headers_only(raw), flat=True, defects=["nesting-too-deep"])
    defects: list[str] = []
    try:
        message = email.message_from_bytes(_with_long_base64_lines(raw, lowered))
        if not message.keys() and _HEADER_START.match(raw.lstrip(_BLANK)):
            defects.append("blank-lines-before-headers")
            message = email.message_from_bytes(raw.lstrip(_BLANK))
    except RecursionError:
        return ReadMessage(_headers_only(raw), flat=True, defects=["nesting-too-deep"])
    if not message.keys():
        defects.append("no-headers")
    return ReadMessage(message, defects=defects)


def _headers_only(raw: bytes) -> Message:
    return BytesParser().parsebytes(raw, headersonly=True)


def _nesting_depth(lowered: bytes) -> int:
    """How deep multiparts nest, from boundary declarations and closing delimiters only
    (a quick scan; exact for well-formed mail, an upper bound for broken mail)."""
    if lowered.count(b"boundary") <= MAX_DEPTH:
        return 0  # it cannot nest deeper than the number of boundaries it declares
    events = sorted(
        [(m.start(), 1, m[1].strip(b"\"'")) for m in _BOUNDARY_PARAM.finditer(lowered)]
        + [(m.start(), -1, m[1]) for m in _CLOSING_DELIMITER.finditer(lowered)]
    )
    open_boundaries: list[bytes] = []
    deepest = 0
    for _, kind, boundary in events:
        if kind == 1:
            open_boundaries.append(boundary)
            deepest = max(deepest, len(open_boundaries))
        elif boundary in open_boundaries:
            del open_boundaries[open_boundaries.index(boundary) :]
    return deepest


def _with_long_base64_lines(raw: bytes, lowered: bytes) -> bytes:
    """``raw`` with the base64 body of each part re-wrapped at 988 characters a line."""
    pieces: list[bytes] = []
    copied_to = 0
    search_from = 0
    while (found := lowered.find(b"base64", search_from)) != -1:
        search_from = found + 6
        start = _base64_body_start(lowered, found)
        end = _base64_body_end(raw, start) if start is not None else None
        if start is None or end is None:
            continue
        data = raw[start:end].replace(b"\r", b"").replace(b"\n", b"")
        wrapped = b"\n".join(
            data[offset : offset + _WRAPPED_LINE] for offset in range(0, len(data), _WRAPPED_LINE)
        )
        pieces += [raw[copied_to:start], wrapped, b"\n"]
        copied_to = search_from = end
    if not pieces:
        return raw
    pieces.append(raw[copied_to:])
    return b"".join(pieces)


def _base64_body_end(raw: bytes, start: int) -> int | None:
    """Where a base64 body starting at ``start`` ends (after its last line's newline),
    when it is long enough to be worth re-wrapping and holds nothing but base64."""
    ends = [end for end in (raw.find(b"\n--", start), raw.find(b"\n\n", start)) if end != -1]
    end = min(ends) + 1 if ends else len(raw)
    block = raw[start:end]
    if block.count(b"\n") < _FEWEST_LINES_TO_REWRAP or block.translate(None, _BASE64_TEXT):
        return None  # short, or not only base64 (a body that merely mentions base64)
    return end


def _base64_body_start(lowered: bytes, found: int) -> int | None:
    """Where the body starts when ``found`` is in a "Content-Transfer-Encoding: base64"
    header line (the blank line ending the part's headers is near), else None."""
    line_start = lowered.rfind(b"\n", 0, found) + 1
    if not lowered.startswith(_CTE_HEADER, line_start):
        return None
    ends = [
        end + len(blank)
        for blank in (b"\n\n", b"\n\r\n")
        if (end := lowered.find(blank, found, found + _LONGEST_PART_HEADER)) != -1
    ]
    return min(ends) if ends else None
