"""Write a notification's MIME bytes: our headers, a text part and an optional HTML part.

Every mail we send has the same shape: a text/plain part, or a multipart/alternative of
text/plain and text/html, UTF-8, headers we composed ourselves. Writing that shape
directly cut an acknowledgement's rendering from 5 ms to 1.4 ms, templates included: the
``email`` package's ``EmailMessage`` + ``set_content`` + generator spent most of it parsing
back and refolding the headers we had just set, and every new ticket's acknowledgement is
written inside the pipeline's commit.

The encodings are the standard library's: quoted-printable (``email.quoprimime``) or
base64 for bodies, RFC 2047 ``B`` words for non-ASCII header text, ``formataddr`` for
quoting display names. Header values arrive here already checked: addresses by
``compose.parse_address``, Message-IDs by ``compose.clean_message_id``, and no value
can hold a line break (``clean_header_text``, below).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable, Sequence
from email import quoprimime
from email.headerregistry import Address
from email.utils import formataddr

CRLF = "\r\n"
_HEADER_WIDTH = 78  # RFC 5322 §2.1.1: lines SHOULD stay within 78 characters
_BODY_WIDTH = 76  # RFC 2045 §6.7: quoted-printable lines are at most 76 characters
_BASE64_LINE_BYTES = 57  # base64.encodebytes: 76 characters a line

# Characters that must never reach a header: CR and LF would start a new header (the
# classic injection: "Subject: hi\r\nBcc: victim@…"), the other C0/C1 controls and the
# Unicode line separators are read as line breaks by some clients and parsers.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")


def clean_header_text(value: str) -> str:
    """``value`` on one line: control characters become spaces, runs of spaces one space."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()


def encode_subject(subject: str, *, name: str = "Subject") -> str:
    """``subject`` as a folded header value: ASCII words as they are, the rest RFC 2047.

    Done here rather than by ``email``'s folder, which (CPython 3.11) loses or adds spaces
    around encoded words and can wrap the ``[#ID]`` tag into one: the tag must stay
    readable in the raw header for every client and filter that looks for it.
    """
    tokens: list[str] = []
    run: list[str] = []  # consecutive words that need encoding travel as one text
    for word in clean_header_text(subject).split(" "):
        if word.isascii() and "=?" not in word:  # "=?" would be decoded by the reader
            if run:
                tokens.extend(encoded_words(" ".join(run)))
                run = []
            if word:
                tokens.append(word)
        else:
            run.append(word)
    if run:
        tokens.extend(encoded_words(" ".join(run)))
    return _fold(((" ", token) for token in tokens), len(name) + 1)


def encoded_words(text: str, max_bytes: int = 42) -> list[str]:
    """``text`` as base64 encoded words of ``max_bytes`` of UTF-8 each at most (42: 68
    characters, which fit after "Subject: "; 45: the RFC's 75), never splitting a char.

    Spaces inside ``text`` stay inside the words: whitespace between two encoded words
    is dropped by decoders (RFC 2047 §6.2).
    """
    words: list[str] = []
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        # 42 bytes -> 56 base64 characters + 12 of framing: fits after "Subject: " in 78.
        if len(chunk) + len(encoded) > max_bytes:
            words.append(_b_word(chunk))
            chunk = b""
        chunk += encoded
    if chunk:
        words.append(_b_word(chunk))
    return words


def _b_word(chunk: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?="


def address_list(addresses: Sequence[Address], *, name: str) -> str:
    """``addresses`` as the folded value of header ``name`` (From, To, Cc, Reply-To)."""
    tokens: list[tuple[str, str]] = []
    for address in addresses:
        words = _mailbox(address)
        tokens.append((", " if tokens else "", words[0]))
        tokens.extend((" ", word) for word in words[1:])
    return _fold(tokens, len(name) + 1, room=1)  # room for a comma added at a fold


def _mailbox(address: Address) -> list[str]:
    """``Name <addr>`` as words: an ASCII name quoted where RFC 5322 needs it (one word,
    never folded inside its quotes), any other name as encoded words of the longest
    size (a name over 45 bytes of UTF-8 takes two, which Python's own address parser,
    unlike mail clients, reads with a space between them)."""
    name = address.display_name
    if not name:
        return [address.addr_spec]
    if name.isascii() and "=?" not in name:
        return [formataddr((name, address.addr_spec))]
    return [*encoded_words(name, max_bytes=45), f"<{address.addr_spec}>"]


def _fold(tokens: Iterable[tuple[str, str]], used: int, room: int = 0) -> str:
    """Join the ``(separator, token)`` pairs, starting a new line before a token that
    would pass 78 characters (``used``: what the first line already holds, the header's
    name and colon). A token is never split; the separator's space becomes the folding
    whitespace, and its comma, if any, stays at the end of the line it closes (``room``
    keeps space for it)."""
    lines: list[str] = []
    width = used
    for separator, token in tokens:
        if lines and width + len(separator) + len(token) + room > _HEADER_WIDTH:
            lines[-1] += separator.rstrip(" ")
            lines.append(token)
            width = 1 + len(token)
        elif lines:
            lines[-1] = f"{lines[-1]}{separator}{token}"
            width += len(separator) + len(token)
        else:
            lines.append(token)
            width += 1 + len(token)
    return f"{CRLF} ".join(lines)


def write_mail(
    headers: Sequence[tuple[str, str]], text: str, html: str | None, language: str
) -> bytes:
    """The complete mail: ``headers`` (name, folded ASCII value) in order, then the MIME
    headers, then the text (and HTML) body, with CRLF line ends throughout."""
    lines = [f"{name}: {value}" for name, value in headers]
    lines.append("MIME-Version: 1.0")
    if html is None:
        part_headers, body = _text_part(text, "plain")
        lines.extend([*part_headers, f"Content-Language: {language}", "", body, ""])
        return CRLF.join(lines).encode("ascii")
    parts = [_text_part(text, "plain"), _text_part(html, "html")]
    boundary = _boundary([body for _, body in parts])
    lines.append(f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"')
    lines.append(f"Content-Language: {language}")
    lines.append("")
    for part_headers, body in parts:
        lines.extend([f"--{boundary}", *part_headers, "", body])
    lines.extend([f"--{boundary}--", ""])
    return CRLF.join(lines).encode("ascii")


def _text_part(body: str, subtype: str) -> tuple[list[str], str]:
    """The part's Content-Type and Content-Transfer-Encoding, and its encoded body."""
    cte, encoded = _encode_body(body)
    headers = [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        f"Content-Transfer-Encoding: {cte}",
    ]
    return headers, encoded


def _encode_body(body: str) -> tuple[str, str]:
    """The shortest safe 7-bit form of ``body``, as the ``email`` package chooses it:
    plain 7bit when it is short-lined ASCII, else quoted-printable, or base64 when
    that is shorter (scripts other than Latin)."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    if all(len(line) <= _HEADER_WIDTH for line in lines) and body.isascii():
        return "7bit", CRLF.join(lines)
    data = CRLF.join(lines).encode("utf-8")
    qp = _quoted_printable("\n".join(lines).encode("utf-8")) or quoprimime.body_encode(
        data.decode("latin-1"), _BODY_WIDTH, eol=CRLF
    )
    if len(qp) > _base64_length(len(data)):
        return "base64", base64.encodebytes(data).decode("ascii").rstrip("\n").replace("\n", CRLF)
    return "quoted-printable", qp


def _base64_length(size: int) -> int:
    """The length of ``size`` bytes in base64 as ``_encode_body`` writes it: 4 characters
    for every 3 bytes begun, a line of 76 for every 57 bytes, lines joined by CRLF. Known
    without encoding, which only one body in a few needs (most are quoted-printable)."""
    lines = -(-size // _BASE64_LINE_BYTES)
    return 4 * -(-size // 3) + len(CRLF) * max(lines - 1, 0)


def _quoted_printable(data: bytes) -> str | None:
    """``data`` (lines ended by LF, no CR) in quoted-printable with CRLF line ends, by
    binascii's encoder in C: several times faster than the ``email`` package's, which
    took a twentieth of the writer's time (bench/README.md). None when a line comes out
    over 76 characters, as binascii's can when it ends in an encoded blank."""
    encoded = binascii.b2a_qp(data, istext=True).decode("ascii")
    if max(map(len, encoded.split("\n"))) > _BODY_WIDTH:
        return None
    return encoded.replace("\n", CRLF)


def _boundary(bodies: Sequence[str]) -> str:
    """A boundary found in none of the encoded ``bodies``."""
    while True:
        boundary = f"=_mg_{secrets.token_hex(12)}"
        if not any(boundary in body for body in bodies):
            return boundary
