"""Parse stage: raw bytes → ParsedMail, on hand-made mails in tests/data/parse/.

Each fixture is a real .eml file holding one hard case (a charset, a broken structure,
a hostile filename); the property tests at the end feed random and mutated mails.
"""

from __future__ import annotations

import base64
import random
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailgate_testing import damaged

from mailgate import mime_reader
from mailgate.errors import ParseFailure
from mailgate.filenames import MAX_FILENAME_BYTES, safe_filename
from mailgate.parse import content_digest, parse_mail
from mailgate.values import ParsedMail

DATA = Path(__file__).resolve().parents[1] / "data" / "parse"
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def parsed(name: str) -> ParsedMail:
    return parse_mail((DATA / name).read_bytes())


def mail(headers: str, body: str = "Hello.\n", *, charset: str = "utf-8") -> bytes:
    """A small mail built from header lines (for cases that need no fixture file)."""
    return f"{headers.strip()}\nContent-Type: text/plain; charset={charset}\n\n{body}".encode()


# -- charsets ------------------------------------------------------------------------------


def test_romanian_iso_8859_16_keeps_comma_below_letters() -> None:
    result = parsed("ro-iso-8859-16.eml")
    assert result.subject == "Plățile nu funcționează"
    assert result.from_name == "Ștefan Țurcanu"
    assert "Plățile cu cardul nu funcționează" in result.body_text
    assert "„Tranzacție respinsă”" in result.body_text
    assert result.content_language == "ro"


def test_romanian_windows_1250_labelled_latin1_is_read_as_romanian() -> None:
    result = parsed("ro-windows-1250-labelled-latin1.eml")
    assert "Aşa cum am discutat" in result.body_text
    assert "Ţinem legătura până mâine şi vă mulţumim" in result.body_text
    assert not set("ºþã") & set(result.body_text)
    assert "charset-guessed:cp1250" in result.defects


def test_polish_iso_8859_2_without_a_charset_is_read_as_polish() -> None:
    result = parsed("pl-iso-8859-2-undeclared.eml")
    assert "Źródło błędu może leżeć po stronie bramki" in result.body_text
    assert result.body_text.endswith("Łukasz Żółć")
    assert result.subject == "Płatność nie przeszła - zamówienie 7731"


def test_utf8_labelled_latin1_is_read_as_utf8() -> None:
    result = parsed("pt-utf8-labelled-latin1.eml")
    assert "A fatura nº 1187 não está correta" in result.body_text
    assert result.from_name == "Conceição Lima"
    assert result.subject == "Fatura nº 1187"


def test_windows_1252_labelled_utf8_is_read_as_windows_1252() -> None:
    result = parse_mail(
        b"From: a@example.com\nSubject: x\nContent-Type: text/plain; charset=utf-8"
        b"\n\nCaf\xe9 \x93ok\x94 \x96 d\xe9j\xe0 vu\n"
    )
    assert result.body_text == "Café “ok” \u2013 déjà vu"


def test_an_unknown_charset_label_still_reads_the_text() -> None:
    result = parse_mail(
        b"From: a@example.com\nSubject: x\n"
        b"Content-Type: text/plain; charset=x-unknown\n\nOl\xe1 mundo\n"
    )
    assert result.body_text == "Olá mundo"
    assert "unknown-charset" in result.defects


def test_undecodable_bytes_become_replacement_characters() -> None:
    result = parse_mail(
        b"From: a@example.com\nSubject: x\nContent-Type: text/plain; charset=utf-8\n\n"
        b"caf\xc3\xa9 \xff\xfe ok d\xc3\xa9j\xc3\xa0 vu \xc3\xa0 bient\xc3\xb4t\n"
    )
    assert result.body_text.startswith("café")
    assert "\ufffd" in result.body_text


# -- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("=?utf-8?q?Pl=C4=83=C8=9Bile?= =?utf-8?q?_nu_merg?=", "Plățile nu merg"),
        ("Re: [#1] =?UTF-8?Q?Pl=C4=83=C8=9Bi?=\n =?UTF-8?Q?le?= azi", "Re: [#1] Plățile azi"),
        ("=?utf-8?B?xJ8=?==?utf-8?B?xJ8=?=", "ğğ"),
        ("=?utf-8?B?w6k?= sans padding", "é sans padding"),
        ("=?utf-8?q?split_=C8?= =?utf-8?q?=9B_char?=", "split ț char"),
        ("=?UTF-8?Q?spaces inside q?=", "spaces inside q"),
        ("=?iso-8859-2?q?p=B3atno=B6=E6?=", "płatność"),
        ("=?x-unknown?q?caf=C3=A9?=", "café"),
        ("=?utf-8*ro?q?limb=C4=83?=", "limbă"),
        ("\n =?UTF-8?B?0JHRi9GB0YLRgNC10LU=?=", "Быстрее"),
    ],
)
def test_subjects_have_their_encoded_words_decoded(header: str, expected: str) -> None:
    result = parse_mail(mail(f"From: a@example.com\nSubject: {header}"))
    assert result.subject == expected
    assert ENCODED_WORD.search(result.subject) is None


def test_raw_utf8_in_headers_is_read() -> None:
    raw = "From: Jörg Müller <joerg@example.de>\nSubject: Größe\n\nx\n".encode()
    result = parse_mail(raw)
    assert (result.from_name, result.subject) == ("Jörg Müller", "Größe")


def test_addresses_are_lower_cased_addr_specs() -> None:
    result = parsed("reply-ro-gmail.eml")
    assert result.from_address == "ana.popescu@magazin.ro"
    assert result.from_name == "Ana Popescu"
    assert result.to == ("support@example.com",)
    raw = mail(
        'From: "Popescu, Ion" <Ion@Example.RO>\nTo: A <A@X.COM>, b@y.com\n'
        "Cc: =?utf-8?q?J=C3=B6rg?= <J@Z.DE>, undisclosed-recipients:;\n"
        "Reply-To: Sales <SALES@shop.example>\nSubject: s"
    )
    result = parse_mail(raw)
    assert (result.from_name, result.from_address) == ("Popescu, Ion", "ion@example.ro")
    assert result.to == ("a@x.com", "b@y.com")
    assert result.cc == ("j@z.de",)
    assert result.reply_to == ("sales@shop.example",)


def test_a_from_with_two_mailboxes_has_no_usable_address() -> None:
    result = parse_mail(mail("From: a@example.com, b@example.com\nSubject: s"))
    assert result.from_address is None
    assert "several-from-addresses" in result.defects


def test_a_from_that_smuggles_a_second_address_is_not_trusted() -> None:
    result = parse_mail(mail("From: alice@example.org)<bob@example.org>\nSubject: s"))
    assert result.from_address != "bob@example.org"


def test_two_from_headers_are_counted() -> None:
    result = parsed("two-from-headers.eml")
    assert result.from_header_count == 2
    assert result.from_address == "user@shop.example"
    assert "several-from-headers" in result.defects


def test_message_ids_lose_their_angle_brackets() -> None:
    result = parsed("reply-ro-gmail.eml")
    assert result.message_id == "CAF3kq7f2Lw0@mail.gmail.com"
    assert result.in_reply_to == ("mg.12.a@example.com",)
    assert result.references == ("CAF3kq7dVx@mail.gmail.com", "mg.12.a@example.com")


def test_date_is_aware_and_keeps_the_senders_offset() -> None:
    result = parsed("reply-ro-gmail.eml")
    assert result.date is not None
    assert result.date.utcoffset() == timedelta(hours=2)
    assert (result.date.hour, result.date.minute) == (11, 18)
    sloppy = parse_mail(mail("From: a@example.com\nDate: 5 Nov 2024 11:18 +0200\nSubject: s"))
    assert sloppy.date is not None and sloppy.date.utcoffset() == timedelta(hours=2)
    assert parse_mail(mail("From: a@example.com\nDate: yesterday\nSubject: s")).date is None


def test_headers_are_all_decoded_and_in_order() -> None:
    result = parsed("reply-ro-gmail.eml")
    names = [name for name, _ in result.headers]
    assert names[:4] == ["From", "To", "Subject", "Date"]
    assert result.header("subject") == "Re: [#12] Plățile nu merg"
    assert result.header("References") == "<CAF3kq7dVx@mail.gmail.com> <mg.12.a@example.com>"


def test_nul_bytes_never_reach_the_text() -> None:
    result = parsed("nul-byte.eml")
    assert result.body_text == "Hello, the export file is broken."
    assert "\x00" not in result.subject
    assert all("\x00" not in value for _, value in result.headers)


# -- bodies --------------------------------------------------------------------------------


def test_html_only_mail_is_read_as_readable_text() -> None:
    result = parsed("html-only.eml")
    text = result.body_text
    assert text.startswith("Hello support,\n\nThree things are broken since the update:")
    assert "1. the cart empties itself\n2. coupons are refused" in text
    assert "- Shop: our admin panel (https://shop.example/admin)" in text
    for hidden in ("document.write", "color: red", "Preheader", "track.example", "var t"):
        assert hidden not in text
    assert result.body_html is not None and "<ol>" in result.body_html


def test_format_flowed_text_is_unwrapped() -> None:
    result = parsed("reply-pl-thunderbird.eml")
    assert "Kolumna NIP jest już wypełniona." in result.body_text


def test_an_empty_text_part_gives_way_to_the_html_one() -> None:
    raw = (
        b"From: a@example.com\nSubject: s\nContent-Type: multipart/alternative; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\n\n"
        b"--b\nContent-Type: text/html\n\n<p>Real text</p>\n--b--\n"
    )
    assert parse_mail(raw).body_text == "Real text"


# -- attachments ---------------------------------------------------------------------------


def test_inline_cid_image_is_an_inline_attachment() -> None:
    result = parsed("inline-cid-image.eml")
    (image,) = result.attachments
    assert (image.content_type, image.content_id, image.inline) == (
        "image/png",
        "banner@magazin.ro",
        True,
    )
    assert image.content.startswith(b"\x89PNG")
    assert result.body_text == "The banner looks cut:\n\n[banner]"


def test_rfc2231_and_rfc2047_filenames_are_decoded() -> None:
    result = parsed("rfc2231-filename.eml")
    assert [a.filename for a in result.attachments] == [
        "Factură martie 2024.pdf",
        "Raport vânzări și plăți.pdf",
        "captură.png",
    ]
    assert result.attachments[0].content == b"%PDF-1.4\n"


def test_hostile_filenames_are_made_safe() -> None:
    names = [a.filename for a in parsed("hostile-filenames.eml").attachments]
    assert names[:6] == [
        "passwd",
        "boot.ini",
        "htaccess",
        "invoicefdp.exe",
        "report.pdf",
        "REPORT (2).pdf",
    ]
    assert names[6].endswith(".pdf") and len(names[6].encode()) <= MAX_FILENAME_BYTES
    assert names[7] == "image.png"  # no name: one from the content type


def test_forwarded_mail_is_an_eml_attachment() -> None:
    result = parsed("forward-as-attachment.eml")
    (forwarded,) = result.attachments
    assert forwarded.filename == "Where is my order_.eml"  # "?" is not allowed on Windows
    assert forwarded.content_type == "message/rfc822"
    inner = parse_mail(forwarded.content)
    assert inner.from_address == "customer@example.org"
    assert inner.body_text == "I ordered a week ago and nothing arrived."


def screenshot_lines(size: int) -> str:
    return base64.encodebytes(bytes(range(256)) * (size // 256)).decode()


def test_large_base64_bodies_read_fast_decode_to_the_same_bytes() -> None:
    """Long base64 bodies are kept out of the stdlib parser; nothing may differ for it."""
    image = bytes(range(256)) * 200
    raw = (
        'From: a@example.com\nSubject: s\nContent-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nSee the screenshot.\n--b\n"
        'Content-Type: image/png; name="shot.png"\nContent-Transfer-Encoding: BASE64\n\n'
        f"{base64.encodebytes(image).decode()}\n--b--\n"
    ).encode()
    for variant in (raw, raw.replace(b"\n", b"\r\n")):
        result = parse_mail(variant)
        assert [a.content for a in result.attachments] == [image]
        assert result.body_text == "See the screenshot."


def test_a_forwarded_mail_keeps_its_own_attachments() -> None:
    image = bytes(range(256)) * 100
    inner = (
        'From: c@example.org\nSubject: Inner\nContent-Type: multipart/mixed; boundary="i"\n\n'
        "--i\nContent-Type: text/plain\n\nInner text.\n--i\n"
        "Content-Type: image/png\nContent-Transfer-Encoding: base64\n\n"
        f"{base64.encodebytes(image).decode()}\n--i--\n"
    )
    raw = (
        'From: a@example.com\nSubject: Fwd\nContent-Type: multipart/mixed; boundary="o"\n\n'
        "--o\nContent-Type: text/plain\n\nForwarding.\n--o\nContent-Type: message/rfc822\n\n"
        f"{inner}\n--o--\n"
    ).encode()
    (forwarded,) = parse_mail(raw).attachments
    assert b"mailgate-set-aside" not in forwarded.content
    assert [a.content for a in parse_mail(forwarded.content).attachments] == [image]


@pytest.mark.parametrize("gap", ["", "\n"])
def test_a_text_body_that_mentions_base64_is_left_as_written(gap: str) -> None:
    pasted = "Content-Transfer-Encoding: base64\n\n" + "QUJD\n" * 20 + gap + "and my question?"
    raw = f"From: a@example.com\nSubject: s\nContent-Type: text/plain\n\n{pasted}\n".encode()
    assert parse_mail(raw).body_text == pasted


def test_truncated_multipart_keeps_text_and_what_arrived_of_the_attachment() -> None:
    result = parsed("truncated-multipart.eml")
    assert result.body_text == "The checkout shows an error, screenshot attached."
    (image,) = result.attachments
    assert image.filename == "error.png" and image.size > 1000
    assert "close-boundary-not-found" in result.defects


def test_parts_after_a_reused_boundary_are_recovered() -> None:
    raw = (
        b'From: a@example.com\nSubject: s\nContent-Type: multipart/mixed; boundary="X"\n\n'
        b'--X\nContent-Type: multipart/alternative; boundary="X"\n\n--X\n'
        b"Content-Type: text/plain\n\nhello\n--X--\n\n--X\nContent-Type: application/zip; "
        b'name="a.zip"\nContent-Transfer-Encoding: base64\n\nUEsDBA==\n--X--\n'
    )
    result = parse_mail(raw)
    assert [a.filename for a in result.attachments] == ["a.zip"]


def test_a_multipart_whose_boundary_is_wrong_is_still_read() -> None:
    raw = (
        b"From: a@example.com\nSubject: s\nContent-Type: multipart/alternative; "
        b'boundary="declared"\n\n--actual\nContent-Type: text/plain\n\nThe text.\n--actual--\n'
    )
    result = parse_mail(raw)
    assert result.body_text == "The text."
    assert "boundary-recovered" in result.defects


# -- digest --------------------------------------------------------------------------------


def test_the_same_mail_through_two_mx_hosts_has_one_digest() -> None:
    original = (DATA / "reply-nl-outlook.eml").read_bytes()
    via_first = (
        b"Return-Path: <jan@winkel.nl>\nDelivered-To: support@example.com\n"
        b"Received: from mx1.example.com by imap1; Wed, 6 Nov 2024 09:04:00 +0100\n"
        b"Authentication-Results: mx1.example.com; dkim=pass\nX-Spam-Status: No\n" + original
    )
    via_second = (
        b"Received: from mx2.example.com by imap2; Wed, 6 Nov 2024 09:04:07 +0100\r\n"
        b"X-Original-To: support@example.com\r\nARC-Seal: i=1; cv=none\r\n"
        b"Received-SPF: pass\r\n" + original.replace(b"\n", b"\r\n")
    )
    digests = {
        content_digest(original),
        parse_mail(via_first).content_digest,
        parse_mail(via_second).content_digest,
    }
    assert len(digests) == 1
    assert len(digests.pop()) == 64


def test_other_content_gives_another_digest() -> None:
    original = (DATA / "reply-nl-outlook.eml").read_bytes()
    assert content_digest(original) != content_digest(original.replace(b"werkt", b"faalt"))
    assert content_digest(original) != content_digest(original.replace(b"RE: [#13]", b"[#13]"))


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 20])
def test_the_digest_does_not_depend_on_how_the_mail_is_read(chunk_size: int) -> None:
    """The digest is taken a piece at a time (a 25 MB mail is not copied whole): CRLF and
    CR split across pieces, an mbox envelope line, trailing blank lines, no body."""
    original = (DATA / "reply-nl-outlook.eml").read_bytes()
    mails = [
        original,
        original.replace(b"\n", b"\r\n"),
        original.replace(b"\n", b"\r"),
        b"From jan@winkel.nl Wed Nov  6 09:04:00 2024\n" + original + b"\n\n\r\n",
        b"Subject: no body\r\nFrom: a@b.example\r\n",
        b"From only an envelope line",
        b"Fro",
        b"",
        b"\r\n\r\nbody after a blank first line\r\r\n",
    ]
    for raw in mails:
        assert content_digest(raw, chunk_size) == content_digest(raw), raw[:60]
    # As the whole-mail version computed it: dedupe keys already stored stay valid.
    assert content_digest(mails[3], chunk_size) == (
        "54f40a1daea3824b70c72b6678a8874a78614d36365a71e6b94bf59dd4bbb584"
    )


@pytest.mark.parametrize("slice_size", [6, 7, 8, 13, 1 << 20])
@given(raw=st.binary(max_size=200) | st.text("aAbB46sSeE\n-", max_size=200).map(str.encode))
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_base64_scan_finds_what_the_lowered_mail_would(
    slice_size: int, raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mail is lowered a slice at a time (a 25 MB mail is not copied whole to find
    "base64"): a word across two slices, or at the very end, is still found."""
    monkeypatch.setattr(mime_reader, "_CHECKED_AT_ONCE", slice_size)
    raw = raw + b"Base64 BASE64" * (len(raw) % 3)
    scan = mime_reader._Lowered(raw)
    for needle in (b"base64", b"boundary", b"a"):
        for start in range(0, len(raw) + 2, 5):
            assert scan.find(needle, start) == raw.lower().find(needle, start), (needle, start)
        found, expected = [], [m.start() for m in re.finditer(re.escape(needle), raw.lower())]
        at = scan.find(needle)
        while at != -1:
            found.append(at)
            at = scan.find(needle, at + len(needle))
        assert found == expected or needle == b"a"  # "a": finditer does not overlap either
        assert scan.count_above(needle, 2) == (raw.lower().count(needle) > 2)


# -- what is not a mail --------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   \r\n\t", b"\x00\x00\n"])
def test_nothing_at_all_is_a_parse_failure(raw: bytes) -> None:
    with pytest.raises(ParseFailure):
        parse_mail(raw)


def test_bytes_that_are_not_a_mail_are_read_as_best_as_possible() -> None:
    result = parse_mail(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR garbage")
    assert result.from_address is None
    assert "no-headers" in result.defects


def test_deeply_nested_multiparts_neither_raise_nor_take_long() -> None:
    depth = 3000
    opening = "".join(
        f'--b{i}\nContent-Type: multipart/mixed; boundary="b{i + 1}"\n\n' for i in range(depth)
    )
    raw = (
        f'From: a@example.com\nSubject: deep\nContent-Type: multipart/mixed; boundary="b0"\n\n'
        f"{opening}--b{depth}\nContent-Type: text/plain\n\ndeep text\n"
    ).encode()
    started = time.thread_time()
    result = parse_mail(raw)
    assert time.thread_time() - started < 5
    assert "nesting-too-deep" in result.defects
    assert not any(d.startswith("parser-error") for d in result.defects)


# -- replies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reply"),
    [
        ("reply-ro-gmail.eml", "Bună ziua,\n\nAm revenit la tema veche și plățile merg din nou."),
        (
            "reply-nl-outlook.eml",
            "Hallo,\n\nHet bestand is nu opgeslagen met punten als decimaalteken "
            "en de import werkt.",
        ),
        (
            "reply-pt-apple.eml",
            "Obrigada, recebemos o detalhamento. Podem emitir a nota com o CNPJ novo?",
        ),
        ("reply-pt-outlook-plain.eml", "Bom dia,\n\nA nota chegou certinha, obrigada."),
        (
            "reply-pl-thunderbird.eml",
            "Dzień dobry,\n\neksport działa, dziękuję za szybką pomoc. "
            "Kolumna NIP jest już wypełniona.",
        ),
        ("reply-pl-gmail-wrapped.eml", "Tak, chodzi o zamówienie 2024/11/0042."),
        ("reply-ro-outlook-html.eml", "Am schimbat imaginea, acum se vede bine.\n\nMulțumesc!"),
        ("forward-en-gmail.eml", "Can you check if this affects our shipping rates?"),
    ],
)
def test_reply_text_is_the_new_part_only(name: str, reply: str) -> None:
    assert parsed(name).reply_text == reply


# -- safe_filename -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ana\\Desktop\\factura.pdf", "factura.pdf"),
        ("..", "attachment.bin"),
        (".bashrc", "bashrc"),
        ("  report .pdf. ", "report .pdf"),
        ("a\x00b\x1fc\x7f.txt", "abc.txt"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("what?: *yes*.txt", "what__ _yes_.txt"),
        ("CON.txt", "_CON.txt"),
        ("utf-8''Factur%C4%83.pdf", "Factură.pdf"),
        ("=?utf-8?q?ofert=C4=83.pdf?=", "ofertă.pdf"),
        (None, "attachment.bin"),
        ("", "attachment.bin"),
    ],
)
def test_safe_filename(name: str | None, expected: str) -> None:
    assert safe_filename(name, "attachment.bin", set()) == expected


def test_safe_filename_keeps_the_extension_when_it_shortens() -> None:
    name = safe_filename("ă" * 400 + ".pdf", "x.bin", set())
    assert name.endswith(".pdf") and len(name.encode()) <= MAX_FILENAME_BYTES


def test_safe_filename_numbers_repeated_names() -> None:
    taken: set[str] = set()
    names = [safe_filename(n, "x.bin", taken) for n in ("a.pdf", "A.pdf", "a.pdf", "b")]
    assert names == ["a.pdf", "A (2).pdf", "a (3).pdf", "b"]
    long_name = "x" * 300 + ".pdf"
    first, second = safe_filename(long_name, "", taken), safe_filename(long_name, "", taken)
    assert second.endswith(" (2).pdf") and first != second
    assert len(second.encode()) <= MAX_FILENAME_BYTES


# -- properties ----------------------------------------------------------------------------

FIXTURES = sorted(DATA.glob("*.eml"))


def assert_well_formed(result: ParsedMail) -> None:
    assert not any(d.startswith("parser-error") for d in result.defects), result.defects
    assert ENCODED_WORD.search(result.subject) is None or "?=" not in result.subject
    assert "\x00" not in result.body_text + result.reply_text + result.subject
    assert result.from_address is None or result.from_address == result.from_address.lower()
    # What goes to a text column of the store: PostgreSQL refuses a NUL in any of them.
    ids = (result.message_id or "", *result.in_reply_to, *result.references)
    values = [*ids, result.from_address or "", *(a.content_type for a in result.attachments)]
    assert not [value for value in values if CONTROL.search(value)], values


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_parse_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    try:
        result = parse_mail(raw)
    except ParseFailure:
        assert not raw.strip(b" \t\r\n\x00")
        return
    assert_well_formed(result)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURES), st.randoms(use_true_random=False), st.integers(1, 20))
def test_parse_never_raises_on_mutated_real_mails(
    path: Path, rng: random.Random, mutations: int
) -> None:
    raw = damaged(path.read_bytes(), rng, mutations)
    try:
        result = parse_mail(raw)
    except ParseFailure:
        assert not raw.strip(b" \t\r\n\x00")
        return
    assert_well_formed(result)


# Names as hostile senders write them: separators, dots, controls, bidi overrides, and
# the lone surrogates that stand for raw 8-bit bytes after the stdlib parser.
HOSTILE_NAMES = st.text(
    alphabet=st.sampled_from(
        [
            "a",
            "ă",
            ".",
            "/",
            "\\",
            " ",
            "\x00",
            "\x1f",
            "\u202e",
            "\udcc3",
            "\ud800",
            "=",
            "?",
            "%",
            "'",
        ]
    ),
    max_size=300,
)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(st.none(), st.text(max_size=600), HOSTILE_NAMES),
    st.one_of(st.text(max_size=40), HOSTILE_NAMES),
    st.sets(st.text(max_size=20)),
)
def test_safe_filename_output_is_always_safe(
    name: str | None, fallback: str, taken: set[str]
) -> None:
    taken_before = set(taken)
    result = safe_filename(name, fallback, taken)
    assert result
    assert "/" not in result and "\\" not in result
    assert not any(ord(char) < 32 or 0x7F <= ord(char) < 0xA0 for char in result)
    assert not result.startswith(".")
    assert len(result.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert result.casefold() not in taken_before
    assert result.casefold() in taken


# -- read as a mail client shows it (found scoring the public corpus, bench/corpus.py) -----


def _multipart(*parts: bytes, subtype: bytes = b"mixed") -> bytes:
    head = b"From: a@example.com\nSubject: s\nMIME-Version: 1.0\n"
    body = b"".join(b"--BB\n" + part + b"\n" for part in parts)
    return head + b"Content-Type: multipart/" + subtype + b"; boundary=BB\n\n" + body + b"--BB--\n"


def _attachment_named(disposition: bytes) -> str:
    raw = _multipart(
        b"Content-Type: text/plain\n\nSee the file.",
        b"Content-Type: application/pdf\nContent-Disposition: " + disposition + b"\n\nQUJD",
    )
    return parse_mail(raw).attachments[0].filename


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        (b"attachment; filename*=iso-8859-1''P%B3atno%9C%E6.pdf", "Płatność.pdf"),  # cp1250
        (b"attachment; filename*=utf-8''P%B3atno%9C%E6.pdf", "Płatność.pdf"),
        (b"attachment; filename*=''Factur%C4%83.pdf", "Factură.pdf"),  # no charset: UTF-8
        (b"attachment; filename*=iso-8859-2''Faktura%20p%B3atno%B6%E6.pdf", "Faktura płatność.pdf"),
        (b"attachment; filename=\"Factura.pdf\"; filename*=UTF-8''Factur%C4%83.pdf", "Factură.pdf"),
        (
            b"attachment;\n filename*0*=utf-8''Factur%C4%83%20;\n filename*1*=lung%C4%83.pdf",
            "Factură lungă.pdf",
        ),
    ],
)
def test_rfc2231_filenames_are_read_like_text(disposition: bytes, name: str) -> None:
    assert _attachment_named(disposition) == name


def test_an_encoded_word_cut_off_at_the_end_is_still_decoded() -> None:
    result = parse_mail(mail("From: a@example.com\nSubject: Re: =?utf-8?Q?Pl=C4=83=C8=9Bi_blocate"))
    assert result.subject == "Re: Plăți blocate"


def test_a_from_without_an_address_keeps_its_name() -> None:
    result = parse_mail(mail("From: MAILER DAEMON <>\nSubject: Undeliverable"))
    assert (result.from_address, result.from_name) == (None, "MAILER DAEMON")


def test_an_html_part_beside_a_plain_one_is_shown_in_its_place() -> None:
    raw = _multipart(
        b"Content-Type: text/html; charset=utf-8\n\n<p>The order <b>1043</b> is stuck.</p>",
        b"Content-Type: image/png\nContent-Disposition: inline\n\nQUJD",
        b"Content-Type: text/plain\n\nSent from the shop's contact form.",
    )
    result = parse_mail(raw)
    assert result.body_text == "The order 1043 is stuck.\n\nSent from the shop's contact form."


def test_html_versions_of_a_plain_body_are_not_repeated() -> None:
    raw = _multipart(
        b"Content-Type: text/plain\n\nHello.",
        b"Content-Type: text/html\n\n<p>Hello.</p>",
        subtype=b"alternative",
    )
    assert parse_mail(raw).body_text == "Hello."


def test_inline_text_files_are_the_body_of_a_mail_without_one() -> None:
    raw = _multipart(
        b'Content-Type: text/plain\nContent-Disposition: inline; filename="note.txt"\n\n'
        b"Please call me."
    )
    result = parse_mail(raw)
    assert result.body_text == "Please call me."
    assert [a.filename for a in result.attachments] == ["note.txt"]


def test_a_whole_message_forward_shows_the_wrapped_text() -> None:
    raw = (
        b"From: a@example.com\nSubject: Fwd\nMIME-Version: 1.0\nContent-Type: message/rfc822\n\n"
        b"From: b@example.com\nSubject: Order 8812\nContent-Type: text/plain\n\nCharged twice.\n"
    )
    result = parse_mail(raw)
    assert result.body_text == "Charged twice."
    assert [a.content_type for a in result.attachments] == ["message/rfc822"]


@pytest.mark.parametrize(
    "header",
    [
        "From: =?utf-8?B?yJh0ZWZhbiDImnVyY2FudSA8c3RlZmFuQHgucm8+?=",  # all one encoded word
        "From: Ștefan Țurcanu <stefan@x.ro",  # never closed
        'From: "Ștefan Țurcanu" <stefan@x.ro>; ',  # a stray separator
    ],
)
def test_a_broken_from_shows_its_mailbox_but_is_marked_repaired(header: str) -> None:
    result = parse_mail(mail(f"{header}\nSubject: s"))
    assert (result.from_address, result.from_name) == ("stefan@x.ro", "Ștefan Țurcanu")
    assert "from-repaired" in result.defects  # never taken as a registered user's address


def test_a_polish_name_labelled_latin1_is_read_as_windows_1250() -> None:
    result = parse_mail(mail("From: =?iso-8859-1?Q?=A3ukasz_Wi=9Cniewski?= <l@x.pl>\nSubject: s"))
    assert result.from_name == "Łukasz Wiśniewski"
    assert parse_mail(mail("From: a@x.pl\nSubject: Cena =?iso-8859-1?Q?=A350?=")).subject == (
        "Cena £50"
    )


def test_a_plain_and_html_version_side_by_side_in_a_mixed_multipart_show_once() -> None:
    raw = _multipart(
        b"Content-Type: text/plain\n\nThe order 1043 is stuck since Monday.",
        b"Content-Type: text/html\n\n<p>The order <b>1043</b> is stuck since Monday.</p>",
    )
    assert parse_mail(raw).body_text == "The order 1043 is stuck since Monday."


@pytest.mark.parametrize(
    ("charset", "subject"),
    [("windows-1251", "Заказ не пришёл"), ("iso-8859-2", "Zażółć gęślą"), ("gb2312", "订单")],
)
def test_raw_8bit_headers_are_read_in_the_body_charset(charset: str, subject: str) -> None:
    raw = (
        b"From: a@example.com\nSubject: " + subject.encode(charset) + b"\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\n\n" + subject.encode(charset)
    )
    assert parse_mail(raw).subject == subject


def test_html_links_keep_short_targets_but_not_tracking_redirects() -> None:
    redirect = "https://t.example/r/?u=" + "a1b2c3d4" * 20
    html = (
        f'<p><a href="{redirect}">Profile</a> <a href="https://shop.example/help">Help</a></p>'
        '<p><a href="https://shop.example/help"><img src="x.png" alt="Help"> Help again</a></p>'
    )
    raw = b"From: a@example.com\nSubject: s\nContent-Type: text/html\n\n" + html.encode()
    assert parse_mail(raw).body_text == (
        "Profile Help (https://shop.example/help)\n\n[Help] Help again"
    )


def test_a_collapsed_newsletter_preheader_is_not_body_text() -> None:
    html = (
        '<span style="font-size:0;max-height:0;overflow:hidden">Up to 50% off!</span>'
        '<div style="opacity:0">Preview</div><p>Your order 1043 has shipped.</p>'
        '<div style="max-height:200px;overflow:hidden">Track it online.</div>'
    )
    raw = b"From: a@example.com\nSubject: s\nContent-Type: text/html\n\n" + html.encode()
    assert parse_mail(raw).body_text == "Your order 1043 has shipped.\n\nTrack it online."


def test_a_plain_version_that_only_points_to_the_html_one_is_replaced_by_it() -> None:
    raw = _multipart(
        b"Content-Type: text/plain\n\nThis is an HTML message. Please use an HTML capable "
        b"mail program to read this message.",
        b"Content-Type: text/html\n\n<p>Your order 1043 has shipped.</p>",
        subtype=b"alternative",
    )
    assert parse_mail(raw).body_text == "Your order 1043 has shipped."


@pytest.mark.parametrize(
    ("label", "codec"),
    [("latin-2", "iso8859-2"), ("cp-1250", "cp1250"), ("8859-2", "iso8859-2"),
     ("x-windows-1250", "cp1250"), ("iso_8859-16", "iso8859-16"), ("rot13", None)],
)  # fmt: skip
def test_loosely_written_charset_labels_are_understood(label: str, codec: str | None) -> None:
    from mailgate.charsets import normalize_charset

    assert normalize_charset(label) == codec


def test_control_characters_are_no_part_of_a_message_id_or_an_address() -> None:
    """A NUL from a broken client: the Message-IDs are read without it, an address with
    one is not used as written (PostgreSQL cannot store it, and no mail reaches it)."""
    result = parse_mail(
        b"From: <a\x01b@magazin.ro>, <x@magazin.ro>\nTo: support@localhost\nSubject: s\n"
        b"Message-ID: <one\x00@magazin.ro>\nIn-Reply-To: <mg.1.a\x7fb@localhost>\n"
        b"References: <r1@x> <r\x002@x>\n\nhello\n"
    )
    assert result.message_id == "one@magazin.ro"
    assert result.in_reply_to == ("mg.1.ab@localhost",)
    assert result.references == ("r1@x", "r2@x")
    assert result.from_address == "x@magazin.ro"
    assert "address-unusable" in result.defects
