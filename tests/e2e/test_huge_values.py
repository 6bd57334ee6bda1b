"""Mails built to make a stage slow: one very long value where the stages expect a short
one. Each was found by timing prepare and commit over such shapes (a long run without
spaces, thousands of short lines, thousands of addresses) in every header and body; each
took from 10 s to hours before its fix, in time that grew with the square of the value's
length, and kept a prepare worker, or the commit of a whole batch, busy all that time.

The limits below are generous (a slow host does each in well under a second): they tell
work that grows with the square of the length from work that grows with the length.
The patterns behind them are checked separately to find exactly what the plain ones did.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgate import bounces, html_text, language, signatures
from mailgate.app import Gateway
from mailgate.clock import ManualClock
from mailgate.values import Arrival, Envelope, Source

LIMIT_S = 10.0
HEAD = (
    "To: support@localhost\r\nMessage-ID: <{n}@magazin.ro>\r\n"
    "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
)


def plain(*, sender: str = "Ana <ana@magazin.ro>", subject: str = "Plata", body: str = "Salut\n"):
    return (
        f"From: {sender}\r\nSubject: {subject}\r\n{HEAD}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )


def html(body: str) -> str:
    return plain(body=body).replace("text/plain", "text/html")


def attachment(filename: str, type_params: str = "") -> str:
    return (
        f"From: Ana <ana@magazin.ro>\r\nSubject: Factura\r\n{HEAD}MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="b"{type_params}\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nFactura e atașată.\r\n--b\r\n"
        f"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename={filename}"
        "\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
    )


def bounce(notice: str) -> str:
    return plain(
        sender="Mail Delivery System <MAILER-DAEMON@mx.magazin.ro>",
        subject="Undelivered Mail Returned to Sender",
        body="I'm sorry to have to inform you that your message could not be delivered.\n\n"
        + notice,
    )


def report(notice: str) -> str:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.magazin.ro>\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n{HEAD}MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain\r\n\r\n{notice}\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; x@magazin.ro\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: support@localhost\r\n"
        f"Subject: x\r\n\r\n{notice}\r\n--b--\r\n"
    )


# Each with its time before the fix, on a slow host.
SHAPES = {
    # 15.6 s: the language's address pattern tried "\S+@" at every character.
    "subject_of_100k_letters_in_encoded_words": plain(
        subject=" ".join(["=?utf-8?q?a=C3=A9?="] * 50_000)
    ),
    # 55 s (2.2 s at 20,000): the signature reader's address pattern, the same way.
    "display_name_of_100k_letters": plain(sender=f"{'a' * 100_000} <ana@magazin.ro>"),
    # 2 x 19 s at 20,000 lines: the returned-mail marker's "^[\s>]*" ran over line ends.
    "bounce_of_40k_quoted_empty_lines": bounce("\n>" * 40_000),
    "bounce_of_20k_signature_markers": bounce("-- \n" * 20_000),
    # 6.5 s: "^\s*" of the recipient patterns, the same way; and a long run for the
    # address pattern searched on its own.
    "report_of_40k_empty_lines": report("\n" * 40_000),
    "report_with_100k_letters_in_a_row": report("a" * 100_000),
    # 41 s: the stdlib HTML parser searched to the end for each unclosed tag ...
    "html_of_20k_unclosed_tags": html("<p>Bună ziua</p>" + "<b x=" * 20_000),
    # ... for each comment after the last "-->" (5.5 s at 80 KB), and each CDATA section.
    "html_of_20k_unclosed_comments": html("<p>Bună ziua</p>" + "<!--a>" * 20_000),
    "html_of_10k_unclosed_sections": html("<p>Bună ziua</p>" + "<![CDATA[x]>" * 10_000),
    # 22 s and 11 s: the stdlib reads each parameter counting the quotes before it again.
    "attachment_named_with_200k_quoted_semicolons": attachment(f'"{";" * 200_000}.pdf"'),
    "multipart_type_with_100k_quoted_semicolons": attachment(
        '"x.pdf"', type_params=f'; x="{";" * 100_000}"'
    ),
    # 0.9 s at 40,000, growing the same way: the Auto-Submitted comment pattern.
    "auto_submitted_of_100k_parentheses": plain(subject="Plata").replace(
        "Subject:", "Auto-Submitted: " + "(" * 100_000 + "\r\nSubject:"
    ),
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_a_huge_value_is_prepared_and_committed_in_time(
    gateway: Gateway, clock: ManualClock, shape: str
) -> None:
    raw = SHAPES[shape].replace("{n}", shape).encode()
    sender = "<>" if "MAILER-DAEMON" in SHAPES[shape] else "ana@magazin.ro"
    arrival = Arrival(raw, Envelope(sender, ("support@localhost",)), Source("pipe"), clock())
    started = time.perf_counter()
    outcome = gateway.pipeline.commit([gateway.pipeline.prepare(arrival)])[0]
    took = time.perf_counter() - started
    assert outcome.kind in {"ticket_created", "suspended"}
    assert took < LIMIT_S, f"{shape}: {took:.1f} s"


# The patterns that now start only where a run begins find what the plain ones found.
_TEXT = st.text(alphabet="ab1.-_@ <>\"'\n\t!:é[#]", max_size=80)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_the_anchored_address_patterns_find_what_the_plain_ones_did(text: str) -> None:
    local = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]"
    bounce_address = re.compile(rf"{local}+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
    signature_address = re.compile(r"[^\s<>\"']+@[^\s<>\"']+")
    not_language = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|\[#\d+\]|\b\w*\d\w*\b")

    def spans(pattern: re.Pattern[str]) -> list[tuple[int, int]]:
        return [m.span() for m in pattern.finditer(text)]

    assert spans(bounces.ADDRESS_RE) == spans(bounce_address)
    assert spans(signatures._ADDRESS) == spans(signature_address)
    assert language._NOT_LANGUAGE.sub(" ", text) == not_language.sub(" ", text)


_LINES = st.lists(
    st.sampled_from(
        [
            "",
            " ",
            ">",
            "> ",
            "\t",
            "Message-ID: <a@b.example>",
            "message-id:",
            " <c@d.example>",
            ">Message-Id:  <e@f.example>",
            "Received: from x",
            "Return-Path: <g@h.example>",
            "text",
            "  user@example.com: unknown user",
            "rcpt@example.org on Fri, 18 Oct 2002",
        ]
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(_LINES)
def test_the_line_start_patterns_find_what_the_plain_ones_did(lines: list[str]) -> None:
    """They no longer run over line ends from a line's start; what they find is the same
    (Message-IDs), and a pasted copy starts at the same header line, not at the blank or
    empty quoted lines above it."""
    text = "\n".join(lines)
    message_id = re.compile(
        r"^[>\s]*message-id\s*:\s*\n?\s*<([^<>\s]+@[^<>\s]+)>", re.IGNORECASE | re.MULTILINE
    )
    assert bounces.MESSAGE_ID_HEADER_RE.findall(text) == message_id.findall(text)
    headers = re.compile(r"^>?\s*(Return-Path|Received):\s", re.IGNORECASE | re.MULTILINE)
    old, new = headers.search(text), bounces.RETURNED_HEADERS_RE.search(text)
    assert (old is None) == (new is None)
    if old and new:
        assert text[old.start() : new.start()].strip(" \t\n>") == ""  # blank lines above


_HTML_PIECES = st.lists(
    st.sampled_from(
        [
            "<p>",
            "</p>",
            "<b x=",
            '"',
            "'",
            ">",
            "<",
            "a",
            " ",
            "<!--",
            "-->",
            "--",
            "<![CDATA[",
            "]]>",
            "]>",
            "<![if !x]>",
            "<![endif]>",
            "<br>",
            "&amp;",
            "<a href='u'>",
            "</a>",
            "\n",
            "<?x",
            "<!x",
            "</",
            "<blockquote>",
            "</blockquote>",
        ]
    ),
    max_size=30,
)


@settings(max_examples=600, deadline=None)
@given(_HTML_PIECES)
def test_markup_nothing_can_close_reads_as_the_parser_read_it(pieces: list[str]) -> None:
    """The text of an HTML body is the same with or without the pre-pass that writes
    unclosable markup as text (it only spares the parser its search to the end). Not
    generated: ``<script>`` and ``<style>``, whose content the parser reads by other
    rules and the text leaves out."""
    html = "".join(pieces)
    assert html_text.without_unclosable_markup(html).count("<") <= html.count("<")
    assert _text(html_text.without_unclosable_markup(html)) == _text(html)


def _text(html: str) -> str:
    writer = html_text._TextWriter(drop_quotes=False)
    try:
        writer.feed(html)
        writer.close()
    except AssertionError:  # an unknown "<![name" ends the stdlib parser's reading
        return "(parser gave up)"
    return writer.text()


def test_an_address_header_is_read_as_far_as_its_first_64_kb() -> None:
    """Reading addresses costs up to ~9 µs a character (90 s for a 10 MB header): past
    ``MAX_ADDRESS_CHARS``, the addresses after the last comma before it are not read."""
    from mailgate.header_values import MAX_ADDRESS_CHARS, parse_addresses

    many = [f"user{i}@shop{i}.example" for i in range(20_000)]
    defects: list[str] = []
    found = [address for _, address in parse_addresses([", ".join(many)], defects)]
    assert defects == ["address-header-cut"]
    assert 0 < len(found) < len(many) and found == many[: len(found)]
    assert len(", ".join(found)) <= MAX_ADDRESS_CHARS
    defects.clear()  # two headers share the one budget
    half = ", ".join(many[:1500])  # 37 KB
    found = [address for _, address in parse_addresses([half, half], defects)]
    assert defects == ["address-header-cut"] and 1500 < len(found) < 3000


def test_a_from_of_a_megabyte_is_cut_and_never_trusted() -> None:
    from mailgate.parse import FROM_REPAIRED, parse_mail

    mail = parse_mail(plain(sender="a" * 1_000_000 + " <ana@magazin.ro>").encode())
    assert "address-header-cut" in mail.defects and FROM_REPAIRED in mail.defects
