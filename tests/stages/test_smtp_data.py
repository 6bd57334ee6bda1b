"""Stage 1 over SMTP, read quickly: the DATA phase in blocks (``mailgate.sources.smtp_data``)
gives what reading line by line gave and leaves what follows the mail in the stream; a
plain ``<local@domain>`` path is read as aiosmtpd's parser reads it."""

from __future__ import annotations

import asyncio
import io
import re

from aiosmtpd.smtp import SMTP
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mailgate.sources.smtp import plain_path
from mailgate.sources.smtp_data import TOO_LONG, TOO_MUCH, read_data

NEXT = b"QUIT\r\n"


async def _line_by_line(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> bytes | str:
    """The reading this module replaced (aiosmtpd's, one buffer), with dots unstuffed
    after a bare LF too: the reference."""
    data = io.BytesIO()
    size = 0
    refusal: str | None = None
    fragments: list[bytes] = []
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            refusal = refusal or TOO_LONG
            line = await reader.read(exc.consumed)
        if not fragments and line == b".\r\n":
            break
        size += len(line)
        if refusal is None and size_limit and size > size_limit:
            refusal = TOO_MUCH
        fragments.append(line)
        if line.endswith(b"\r\n"):
            whole = b"".join(fragments)
            fragments.clear()
            if refusal is None and len(whole) > line_limit:
                refusal = TOO_LONG
            elif refusal is None:
                data.write(re.sub(rb"(?m)^\.", b"", whole))  # also after a bare LF
    return refusal or data.getvalue()


async def _read(
    stream: bytes, chunks: list[int], size_limit: int | None, line_limit: int, *, blocks: bool
) -> tuple[bytes | str, bytes]:
    """What one reading gives of ``stream`` fed in ``chunks``, and what it left unread."""
    reader = asyncio.StreamReader(limit=line_limit)

    async def feed() -> None:
        at = 0
        for size in [*chunks, len(stream)]:
            if at >= len(stream):
                break
            reader.feed_data(stream[at : at + size])
            at += size
            await asyncio.sleep(0)
        reader.feed_eof()

    feeding = asyncio.ensure_future(feed())
    if blocks:
        result = await read_data(reader, size_limit=size_limit, line_limit=line_limit)
    else:
        result = await _line_by_line(reader, size_limit, line_limit)
    await feeding
    return result, await reader.read()


def _both(
    stream: bytes, chunks: list[int], size_limit: int | None = None, line_limit: int = 1000
) -> tuple[tuple[bytes | str, bytes], tuple[bytes | str, bytes]]:
    return (
        asyncio.run(_read(stream, chunks, size_limit, line_limit, blocks=True)),
        asyncio.run(_read(stream, chunks, size_limit, line_limit, blocks=False)),
    )


_PIECES = [b"a", b".", b"..", b"\r", b"\n", b" ", b"x" * 40, b"y" * 300]
_LINE = st.lists(st.sampled_from(_PIECES), max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(_LINE.map(b"".join), max_size=40),
    chunks=st.lists(st.integers(1, 400), max_size=30),
    size_limit=st.one_of(st.none(), st.integers(1, 5000)),
    line_limit=st.integers(20, 700),
)
def test_blocks_read_what_lines_read(
    lines: list[bytes], chunks: list[int], size_limit: int | None, line_limit: int
) -> None:
    body = b"".join(line + b"\r\n" for line in lines)
    assume(b"\r\n.\r\n" not in b"\r\n" + body)  # a lone dot would end the mail early
    stream = body + b".\r\n" + NEXT
    in_blocks, line_by_line = _both(stream, chunks, size_limit, line_limit)
    assert in_blocks == line_by_line
    assert in_blocks[1] == NEXT  # nothing after the lone dot was taken


def test_dot_stuffing_is_undone_and_a_line_ending_in_a_dot_is_text() -> None:
    stream = b"..hidden\r\nEnd of sentence.\r\n...\r\n\r\n.\r\n" + NEXT
    (result, rest), _ = _both(stream, [7, 3, 100])
    assert result == b".hidden\r\nEnd of sentence.\r\n..\r\n\r\n" and rest == NEXT


def test_a_dot_after_a_bare_lf_is_unstuffed_but_ends_nothing() -> None:
    """smtplib, given bytes, sends its LF line ends and doubles the dots after them;
    only CRLF, dot, CRLF ends the mail (SMTP smuggling)."""
    stream = b"a\n..b\n.\nc\r\n.\r\n" + NEXT
    (result, rest), _ = _both(stream, [3, 5, 100])
    assert result == b"a\n.b\n\nc\r\n" and rest == NEXT


def test_a_line_as_long_as_the_limit_is_not_too_long_before_its_lf_comes() -> None:
    """A block can end between a line's CR and its LF: a line of exactly ``line_limit``
    bytes is then not yet over it, and a mail over the size limit as well is refused
    for its size first, as the line-by-line reading does (found by hypothesis)."""
    stream = b"x" * 344 + b"\r\naaa.\r\n.\r\n" + NEXT
    in_blocks, line_by_line = _both(stream, [], size_limit=1, line_limit=344)
    assert in_blocks == line_by_line == (TOO_MUCH, NEXT)


def test_an_empty_mail_and_a_mail_of_one_line() -> None:
    assert _both(b".\r\n" + NEXT, [])[0] == (b"", NEXT)
    assert _both(b"x\r\n.\r\n" + NEXT, [2])[0] == (b"x\r\n", NEXT)


def test_a_large_mail_in_many_blocks() -> None:
    body = b"".join(b"QUJD" * 19 + b"\r\n" for _ in range(20_000))  # base64: no dots
    stream = body + b".\r\n" + NEXT
    (result, rest), _ = _both(stream, [65_536] * 40, line_limit=65_536)
    assert result == body and rest == NEXT


def test_refusals_wait_for_the_end_of_the_mail() -> None:
    too_long = b"a" * 2000 + b"\r\nmore\r\n.\r\n" + NEXT
    assert _both(too_long, [500] * 10)[0] == (TOO_LONG, NEXT)
    too_much = b"line\r\n" * 100 + b".\r\n" + NEXT
    assert _both(too_much, [64], size_limit=300)[0] == (TOO_MUCH, NEXT)


class _Listener:
    local_part_limit = 0


# Often what clients send, else near misses ("a..b", ".a", "a-") and anything at all.
_TEXT = st.one_of(
    st.from_regex(r"[a-z0-9+_=-]{1,4}(\.[a-z0-9-]{1,4}){0,2}", fullmatch=True),
    st.text(alphabet="ab1.-+_=", max_size=6),
    st.text(alphabet='ab.-+_=()<>@"\\ \t,;:é1', max_size=6),
)


@settings(max_examples=600, deadline=None)
@given(
    before=st.sampled_from(["", " ", "\t "]),
    address=st.tuples(_TEXT, _TEXT).map("@".join),
    after=st.tuples(
        st.sampled_from(["", " ", "  ", "\t", "(note) "]),
        st.sampled_from(["", "SIZE=1234", "SIZE=1 BODY=8BITMIME ", "(x)", "é=1"]),
        st.sampled_from(["", " ", "x"]),
    ).map("".join),
)
def test_a_plain_path_is_read_as_aiosmtpd_reads_it(before: str, address: str, after: str) -> None:
    """The quick reading of ``MAIL FROM:<a@b> PARAMS`` gives aiosmtpd's answer, or
    leaves the path to aiosmtpd's parser."""
    arg = f"{before}<{address}>{after}"
    quick = plain_path(arg)
    if quick is not None:
        assert quick == SMTP._getaddr(_Listener(), arg)  # type: ignore[arg-type]


def test_common_paths_take_the_quick_reading() -> None:
    assert plain_path("<ana.pop+shop@magazin.ro> SIZE=1234 BODY=8BITMIME") == (
        "ana.pop+shop@magazin.ro",
        "SIZE=1234 BODY=8BITMIME",
    )
    assert plain_path("<support@localhost>") == ("support@localhost", "")
    for odd in ("<>", "ana@magazin.ro", '<"a b"@x.ro>', "<ana@[127.0.0.1]>", "<ană@x.ro>"):
        assert plain_path(odd) is None  # aiosmtpd's parser reads these
