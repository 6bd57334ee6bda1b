"""Reading header values for ``parse``: decoded text, addresses, Message-IDs and dates.

Values arrive as the stdlib's compat32 parser keeps them: raw text in which 8-bit bytes
are carried as surrogates. Nothing here raises on malformed input; an unusable value
reads as empty (or None) and the caller records a defect.
"""

from __future__ import annotations

import binascii
import email.utils
import re
from datetime import UTC, datetime, timedelta, timezone

from mailparser.dates import parse_mail_date
from mailparser.utils import get_addresses

from mailgate.charsets import decode_text, normalize_charset

# RFC 2047 encoded words, read leniently: real mail carries spaces and even "?" inside Q
# text, lower-case encodings, odd charset names and RFC 2231 language suffixes
# (=?utf-8*ro?Q?…?=). The text is lazy and bounded, so a lone "=?" costs little.
_ENCODED_WORD = re.compile(r"=\?([^?\s*]{0,60})(?:\*[^?\s]{0,20})?\?([bBqQ])\?(.{0,2000}?)\?=")
# An encoded word cut off at the end of the value (its "?=" lost to a length limit or a
# bad fold): clients still decode it, and a reader must not see the raw form.
_UNTERMINATED_WORD = re.compile(
    r"=\?([^?\s*]{1,60})(?:\*[^?\s]{0,20})?\?([bBqQ])\?([^?]{1,2000})\??\s*$"
)
_BETWEEN_WORDS = re.compile(r"[ \t\r\n]*")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAKS = re.compile(r"[\r\n]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MESSAGE_ID = re.compile(r"<\s*([^<>\s]+?)\s*>")
_DAY_MINUTES = 24 * 60
_BARE_ID = re.compile(r"^[^\s<>@]+@[^\s<>@]+$")

# The address forms nearly every mail uses, read by one regex; anything else (groups,
# comments, odd quoting) goes to mail-parser's hardened parser, which is 4x slower.
_SIMPLE_ADDRESS = re.compile(
    r"""\s*(?:
        (?:"(?P<quoted>(?:[^"\\\r\n]|\\.){0,200})"|(?P<name>[^<>",;:@\\()\r\n]{0,200}?))
        \s*<(?P<angle>[^<>@\s",;:()\\]{1,64}@[^<>@\s",;:()\\]{1,255})>
      | (?P<bare>[^<>@\s",;:()\\]{1,64}@[^<>@\s",;:()\\]{1,255})
    )\s*(?:,|$)""",
    re.VERBOSE,
)
# What an address must look like to be used (internationalised domains included).
# No control characters: no mail can be sent to such an address, and PostgreSQL cannot
# store a NUL.
_ADDR_SPEC = re.compile(
    r"^(?:\"[^\"\\\x00-\x1f\x7f]{1,64}\"|[^@\s<>()\[\]\\,;:\"\x00-\x1f\x7f]+)@[\w.\-\[\]:]+$"
)


def unicode_value(raw: str, charset: str | None = None) -> str:
    """The raw value with 8-bit bytes (carried as surrogates) read as text.

    ``charset`` is the mail's body charset: raw 8-bit headers are written in it by the
    clients that send them, and mail clients read them with it (UTF-8 still comes first).
    """
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return decode_text(raw.encode("utf-8", "surrogateescape"), charset).text
    return raw


def decode_header_value(raw: str, charset: str | None = None) -> str:
    """A header value as a reader sees it: unfolded, encoded words decoded, one line
    (``charset``: the mail's body charset, for raw 8-bit bytes; see ``unicode_value``)."""
    if raw.isascii() and "=?" not in raw:
        if raw.isprintable():  # the common case: nothing to unfold, decode or clean
            return raw.strip()
        if "\n" not in raw and "\r" not in raw:
            return _CONTROL.sub(" ", raw).strip()
    text = _FOLD.sub("", unicode_value(raw, charset))
    text = _LINE_BREAKS.sub(" ", text)
    if "=?" in text:
        text = decode_encoded_words(text)
    return _CONTROL.sub(" ", text).strip()


def decode_encoded_words(text: str) -> str:
    """Replace RFC 2047 encoded words; adjacent words are joined (RFC 2047 §6.2)."""
    pieces: list[str] = []
    pending: list[tuple[str, bytes]] = []  # consecutive words: one charset's bytes
    position = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[position : match.start()]
        if not pending or _BETWEEN_WORDS.fullmatch(gap) is None:
            _flush(pending, pieces)
            pieces.append(gap)
        charset, data = match[1], _word_bytes(match[2], match[3])
        if pending and pending[-1][0] == charset.lower():
            pending[-1] = (pending[-1][0], pending[-1][1] + data)
        else:
            # Split multi-byte characters across words of one charset are common;
            # joining their bytes before decoding reads them whole.
            pending.append((charset.lower(), data))
        position = match.end()
    tail = text[position:]
    cut_off = _UNTERMINATED_WORD.search(tail)
    if cut_off is not None and normalize_charset(cut_off[1]) is not None:
        gap = tail[: cut_off.start()]
        if not pending or _BETWEEN_WORDS.fullmatch(gap) is None:
            _flush(pending, pieces)
            pieces.append(gap)
        pending.append((cut_off[1].lower(), _word_bytes(cut_off[2], cut_off[3])))
        tail = ""
    _flush(pending, pieces)
    pieces.append(tail)
    return "".join(pieces)


def _word_bytes(encoding: str, payload: str) -> bytes:
    data = payload.encode("utf-8", "surrogateescape")
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except binascii.Error:
        return payload.encode("utf-8", "surrogateescape")


def _flush(pending: list[tuple[str, bytes]], pieces: list[str]) -> None:
    for charset, data in pending:
        pieces.append(decode_text(data, normalize_charset(charset) or charset).text)
    pending.clear()


# Of the values of one header: some 2,000 addresses. Past it, the addresses after the
# last comma before it are not read (defect "address-header-cut"): reading them costs
# about 9 µs a character in the worst case, 90 s for a header of 10 MB.
MAX_ADDRESS_CHARS = 64 * 1024


def parse_addresses(
    raw_values: list[str], defects: list[str], charset: str | None = None
) -> list[tuple[str, str]]:
    """Every ``(display name, lower-cased address)`` in these header values, in order
    (``charset``: the mail's body charset, for raw 8-bit bytes), as far as the first
    ``MAX_ADDRESS_CHARS`` characters of them go."""
    found: list[tuple[str, str]] = []
    room = MAX_ADDRESS_CHARS
    for raw in raw_values:
        value = _LINE_BREAKS.sub(" ", _FOLD.sub("", unicode_value(raw, charset))).strip()
        if len(value) > room:
            cut = value.rfind(",", 0, room)
            value = value[: max(cut, 0)]
            if "address-header-cut" not in defects:
                defects.append("address-header-cut")
        room -= len(value)
        if not value:
            continue
        pairs = _simple_addresses(value)
        if pairs is None:
            problems: list[dict[str, object]] = []
            pairs = get_addresses(value, defects=problems)
            if problems:
                defects.append("address-header-ambiguous")
        for name, address in pairs:
            clean = address.strip().strip("<>").lower()
            if not clean:
                continue
            if _ADDR_SPEC.match(clean) is None:
                defects.append("address-unusable")
                continue
            found.append((decode_header_value(_unquote(name)), clean))
    return found


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < len(value):
        match = _SIMPLE_ADDRESS.match(value, position)
        if match is None or match.end() == position:
            return None
        if match["bare"]:
            pairs.append(("", match["bare"]))
        else:
            pairs.append((match["quoted"] or match["name"] or "", match["angle"]))
        position = match.end()
    return pairs


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    return re.sub(r"\\(.)", r"\1", name)


def parse_message_ids(raw: str | None) -> tuple[str, ...]:
    """The Message-IDs in a Message-ID, In-Reply-To or References value, without brackets."""
    if not raw:
        return ()
    value = without_controls(unicode_value(raw))
    ids = _MESSAGE_ID.findall(value)
    if not ids:
        bare = value.strip()
        ids = [bare] if _BARE_ID.match(bare) else []
    unique: dict[str, None] = dict.fromkeys(i for i in ids if len(i) <= 998)
    return tuple(unique)


def without_controls(text: str) -> str:
    """``text`` without control characters (tab and line breaks kept): none is part of a
    Message-ID, and PostgreSQL cannot store a NUL in a text column."""
    return _CONTROL.sub("", text)


def parse_date(raw: str | None) -> datetime | None:
    """The Date value as an aware datetime in the sender's own offset, or None."""
    if not raw:
        return None
    value = unicode_value(raw)
    # mail-parser's RFC 5322 reader is strict and documents what it rejects; the
    # stdlib's lenient one reads the sloppy dates mail clients really write.
    result = parse_mail_date(value)
    instant: datetime | None = result.value  # in UTC
    if instant is not None:
        minutes = round(float(result.timezone) * 60) if result.timezone else 0
        if abs(minutes) >= _DAY_MINUTES:
            return instant  # an offset no clock has: keep the instant, in UTC
        return instant.astimezone(timezone(timedelta(minutes=minutes)))
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # "-0000": the zone is unknown; read it as UTC
    return parsed


def first_language(raw: str | None) -> str | None:
    """The first language tag of a Content-Language value (``en-US``), or None."""
    if not raw:
        return None
    tag = decode_header_value(raw).split(",")[0].strip()
    return tag if re.fullmatch(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*", tag) else None
