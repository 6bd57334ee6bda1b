"""Raw bytes into the stdlib's compat32 ``Message``, safely and fast (for ``parse``).

This is how mail-parser's ``MailParser.from_bytes`` reads a mail, with two guards in
front of the stdlib parser. It checks every line against every open boundary, so deep
nesting costs seconds for a few kilobytes: such mail is read as headers plus text. And
it reads line by line, so a 150 KB screenshot is 2,000 lines it has no use for: long
base64 bodies are set aside before it runs (a marker line stands in for each) and
decoded straight from the raw bytes when asked for; that is 15 times faster.
"""

from __future__ import annotations

import binascii
import email
import re
import secrets
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser

MAX_DEPTH = 40  # deeper nesting is an attack on the parser, not a mail
MAX_PARAMS = 100  # parameters read of a Content-Type or Content-Disposition field

_BLANK = b" \t\r\n\x00"
_HEADER_START = re.compile(rb"^[\x21-\x39\x3b-\x7e]{1,76}:")
# A Content-Type or Content-Disposition field, with its continuation lines.
_PARAM_FIELD = re.compile(
    rb"^content-(?:type|disposition)[ \t]*:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*",
    re.IGNORECASE | re.MULTILINE,
)
_BOUNDARY_PARAM = re.compile(rb"boundary\s*=\s*(\"[^\"\r\n]{1,200}\"|[^\s;]{1,200})")
_CLOSING_DELIMITER = re.compile(rb"\n--([^\r\n]{1,200}?)--[ \t]*\r?(?=\n|$)")
_BASE64_TEXT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n"
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_FEWEST_LINES_TO_SET_ASIDE = 16
_CTE_HEADER = b"content-transfer-encoding"
_LONGEST_PART_HEADER = 4096
_MARKER_PREFIX = "mailgate-set-aside-"
_CHECKED_AT_ONCE = 1 << 20  # bytes of a base64 body checked per slice


class SetAside:
    """Base64 bodies taken out of a mail before the stdlib parses it, by marker.

    A marker is a line of its own, with a random part, so no mail can forge one. The
    bodies stay where they are in the raw bytes: only their places are kept.
    """

    def __init__(self, raw: bytes = b"") -> None:
        self._raw = memoryview(raw)
        self._prefix = f"{_MARKER_PREFIX}{secrets.token_hex(8)}-"
        self._places: dict[str, tuple[int, int]] = {}

    def __bool__(self) -> bool:
        return bool(self._places)

    def marker_for(self, start: int, end: int) -> bytes:
        marker = f"{self._prefix}{len(self._places)}"
        self._places[marker] = (start, end)
        return marker.encode("ascii")

    def decoded(self, payload: str) -> bytes | None:
        """The decoded body a part's payload (a marker) stands for, or None."""
        place = self._places.get(payload.strip())
        return None if place is None else decode_base64(self._raw[place[0] : place[1]])

    def restored(self, data: bytes) -> bytes:
        """``data`` with any marker replaced by the body it stands for."""
        if not self._places or _MARKER_PREFIX.encode() not in data:
            return data
        for marker, (start, end) in self._places.items():
            data = data.replace(marker.encode("ascii") + b"\n", self._raw[start:end].tobytes())
        return data


@dataclass(slots=True)
class ReadMessage:
    """The parsed message; ``flat`` when its MIME tree was left unread (body is text)."""

    message: Message
    set_aside: SetAside = field(default_factory=SetAside)
    flat: bool = False
    defects: list[str] = field(default_factory=list)


def read_message(raw: bytes) -> ReadMessage:
    """``raw`` parsed by the stdlib (compat32), as mail-parser does, behind the guards."""
    lowered = _Lowered(raw)
    if _nesting_depth(raw, lowered) > MAX_DEPTH:
        return ReadMessage(_headers_only(raw), flat=True, defects=["nesting-too-deep"])
    defects: list[str] = []
    set_aside = SetAside(raw)
    try:
        message = email.message_from_bytes(
            _with_few_params(_without_base64_bodies(raw, lowered, set_aside))
        )
        if not message.keys() and _HEADER_START.match(raw.lstrip(_BLANK)):
            defects.append("blank-lines-before-headers")
            stripped = raw.lstrip(_BLANK)
            set_aside = SetAside(stripped)
            message = email.message_from_bytes(
                _with_few_params(_without_base64_bodies(stripped, _Lowered(stripped), set_aside))
            )
    except RecursionError:
        return ReadMessage(_headers_only(raw), flat=True, defects=["nesting-too-deep"])
    if not message.keys():
        defects.append("no-headers")
    return ReadMessage(message, set_aside, defects=defects)


def decode_base64(body: bytes | memoryview) -> bytes:
    """Base64 decoded as mail clients do: line breaks and stray characters ignored,
    missing padding forgiven, a dangling last character dropped."""
    try:
        return binascii.a2b_base64(body)
    except binascii.Error:
        data = _NOT_BASE64.sub(b"", bytes(body).split(b"=", 1)[0])
        data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))


def _headers_only(raw: bytes) -> Message:
    return BytesParser().parsebytes(_with_few_params(raw), headersonly=True)


def _with_few_params(data: bytes) -> bytes:
    """``data`` with every Content-Type and Content-Disposition field cut after its
    ``MAX_PARAMS``-th parameter.

    The stdlib reads parameters (``get_param``, ``get_boundary``, even while it parses a
    multipart) by counting the quotes before each ``;`` from the start of the value again:
    a filename of 40,000 quoted semicolons took 1.8 s, and 100,000 took 11 s. No mail
    needs a hundred parameters (an RFC 2231 filename in continuations needs a dozen).
    """
    if data.count(b";") <= MAX_PARAMS:
        return data  # the usual case: one count in C
    return _PARAM_FIELD.sub(_cut_params, data)


def _cut_params(field: re.Match[bytes]) -> bytes:
    value = field.group(0)
    at = -1
    for _ in range(MAX_PARAMS + 1):
        at = value.find(b";", at + 1)
        if at < 0:
            return value
    return value[:at]


class _Lowered:
    """``raw.lower()``'s ``find``, lowering a slice of ``raw`` at a time: the whole mail
    lowered at once was a copy of a 25 MB attachment (bench/README.md, Memory)."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._at = 0
        self._slice = b""  # raw[_at : _at + len(_slice)].lower()

    def find(self, needle: bytes, start: int = 0) -> int:
        size = len(self._raw)
        while start <= size - len(needle):
            end = self._at + len(self._slice)
            if not self._at <= start <= end - len(needle):
                self._at = start
                self._slice = self._raw[
                    start : start + max(_CHECKED_AT_ONCE, 2 * len(needle))
                ].lower()
                end = start + len(self._slice)
            found = self._slice.find(needle, start - self._at)
            if found != -1:
                return self._at + found
            start = end - len(needle) + 1  # where a needle across the slice's end begins
        return -1

    def count_above(self, needle: bytes, limit: int) -> bool:
        """Whether ``needle`` occurs more than ``limit`` times (not overlapping)."""
        found = -len(needle)
        for _ in range(limit + 1):
            found = self.find(needle, found + len(needle))
            if found == -1:
                return False
        return True


def _nesting_depth(raw: bytes, scan: _Lowered) -> int:
    """How deep multiparts nest, from boundary declarations and closing delimiters only
    (a quick scan; exact for well-formed mail, an upper bound for broken mail)."""
    if not scan.count_above(b"boundary", MAX_DEPTH):
        return 0  # it cannot nest deeper than the number of boundaries it declares
    lowered = raw.lower()  # a mail with this many boundaries is an attack: no need to spare
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


def _without_base64_bodies(raw: bytes, lowered: _Lowered, set_aside: SetAside) -> bytes:
    """``raw`` with each long base64 part body replaced by a marker line."""
    pieces: list[bytes] = []
    copied_to = 0
    search_from = 0
    while (found := lowered.find(b"base64", search_from)) != -1:
        search_from = found + 6
        start = _base64_body_start(raw, found)
        end = _base64_body_end(raw, start) if start is not None else None
        if start is None or end is None:
            continue
        pieces += [raw[copied_to:start], set_aside.marker_for(start, end), b"\n"]
        copied_to = search_from = end
    if not pieces:
        return raw
    pieces.append(raw[copied_to:])
    return b"".join(pieces)


def _base64_body_start(raw: bytes, found: int) -> int | None:
    """Where the body starts when ``found`` is in a "Content-Transfer-Encoding: base64"
    header line (the blank line ending the part's headers is near), else None."""
    line_start = raw.rfind(b"\n", 0, found) + 1
    if raw[line_start : line_start + len(_CTE_HEADER)].lower() != _CTE_HEADER:
        return None
    ends = [
        end + len(blank)
        for blank in (b"\n\n", b"\n\r\n")
        if (end := raw.find(blank, found, found + _LONGEST_PART_HEADER)) != -1
    ]
    return min(ends) if ends else None


def _base64_body_end(raw: bytes, start: int) -> int | None:
    """Where a base64 body starting at ``start`` ends (after its last line's newline),
    when it is long enough to be worth setting aside and holds nothing but base64."""
    ends = [end for end in (raw.find(b"\n--", start), raw.find(b"\n\n", start)) if end != -1]
    end = min(ends) + 1 if ends else len(raw)
    if raw.count(b"\n", start, end) < _FEWEST_LINES_TO_SET_ASIDE:
        return None  # short: not worth it
    # translate is a C loop, faster than a regex here; a piece at a time, so that a
    # 25 MB attachment is not copied whole to be checked.
    for piece in range(start, end, _CHECKED_AT_ONCE):
        if raw[piece : min(piece + _CHECKED_AT_ONCE, end)].translate(None, _BASE64_TEXT):
            return None  # not only base64: a body that merely mentions base64
    return end
