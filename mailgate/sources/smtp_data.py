"""The DATA phase of an SMTP transaction, read in blocks rather than line by line.

aiosmtpd awaits ``readuntil(b"\\r\\n")`` once per line: a mail with a 150 KB screenshot is
2,000 awaits, and the listener spent a third of its time there (bench/README.md). Here
one ``readuntil(b".\\r\\n")`` takes everything up to the next line that ends in a dot
(base64 has none; prose has some), and the lines of that block are checked and
dot-unstuffed with bytes operations. A block is never read past the end of the mail:
whatever the client sent after the lone dot stays in the stream for the next command.

The result is what the line-by-line reading gave: the mail with RFC 5321's dot-stuffing
undone, or the reply refusing it once the client has sent it all (a line longer than
``line_limit`` bytes with its CRLF, or more than ``size_limit`` bytes in all). One
difference: a dot is also unstuffed after a bare LF (``_unstuff``), which aiosmtpd did
not do.
"""

from __future__ import annotations

import asyncio
import io

TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH = "552 Error: Too much mail data"

_DOT_LINE_END = b".\r\n"
_CRLF = b"\r\n"
# A separator that ends a partial read must stay findable: a block taken without one
# leaves this many bytes in the stream (readuntil's ``consumed`` already keeps len - 1).
_KEEP = 4


async def read_data(
    reader: asyncio.StreamReader, *, size_limit: int | None, line_limit: int
) -> bytes | str:
    """The mail after ``354``, up to the line holding a lone dot (which is consumed).

    Raises what the stream raises (``IncompleteReadError`` when the client goes away).
    """
    data = io.BytesIO()
    size = 0  # bytes of the mail so far, counted until it is refused
    refusal: str | None = None
    pending = b""  # read and not yet taken: the start of a line that has no CRLF yet
    line_start = True  # False only after a refused line was cut short (its tail kept)
    while True:
        try:
            block = await reader.readuntil(_DOT_LINE_END)
            found = True
        except asyncio.LimitOverrunError as exc:
            # No line ends in a dot within the stream's limit: take most of what is
            # buffered, leaving the tail in which the separator may be starting.
            block = await reader.readexactly(max(exc.consumed - _KEEP, 1))
            found = False
        pending += block
        end = found and (
            (line_start and pending == _DOT_LINE_END) or pending.endswith(b"\r\n.\r\n")
        )
        if end:
            lines, pending = pending[: -len(_DOT_LINE_END)], b""
        else:
            cut = pending.rfind(_CRLF) + len(_CRLF) if _CRLF in pending else 0
            lines, pending = pending[:cut], pending[cut:]
            line_start = line_start or cut > 0
        if lines and refusal is None:
            refusal = _refusal(lines, size, size_limit, line_limit)
            size += len(lines)
            if refusal is None:
                data.write(_unstuff(lines))
        if end:
            break
        # A line already too long for its CRLF; a CR at the end may be its CRLF's start.
        if len(pending) - pending.endswith(b"\r") > line_limit:
            refusal = refusal or TOO_LONG
            pending, line_start = pending[-_KEEP:], False
    return data.getvalue() if refusal is None else refusal


def _refusal(lines: bytes, size: int, size_limit: int | None, line_limit: int) -> str | None:
    """Why these whole lines (after ``size`` bytes of the mail) refuse it, if they do:
    the first reason in the order the lines came, as a line-by-line reading finds it."""
    too_much = bool(size_limit) and size + len(lines) > (size_limit or 0)
    too_long = len(lines) > line_limit and max(map(len, lines.split(_CRLF))) + 2 > line_limit
    if not (too_much and too_long):
        return TOO_MUCH if too_much else TOO_LONG if too_long else None
    for line in lines.split(_CRLF)[:-1]:  # both: which came first
        if len(line) > line_limit:  # over the stream's limit before its CRLF came
            return TOO_LONG
        size += len(line) + 2
        if size > (size_limit or 0):
            return TOO_MUCH
        if len(line) + 2 > line_limit:
            return TOO_LONG
    raise AssertionError("unreachable: one of the lines is over a limit")


def _unstuff(lines: bytes) -> bytes:
    """RFC 5321 4.5.2: the client doubled each dot that starts a line; one goes.

    A line here also starts after a bare LF, as in Postfix when it takes a bare LF for
    a line end (``smtpd_forbid_bare_newline = normalize``): Python's ``smtplib`` sends a
    mail given as bytes with the line ends it has, and doubles the dots after each LF.
    Only the end of the mail is strict (CRLF, dot, CRLF), against SMTP smuggling.
    """
    if lines.startswith(b"."):
        lines = lines[1:]
    return lines.replace(b"\n.", b"\n") if b"\n." in lines else lines
