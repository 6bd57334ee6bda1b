"""The MIME writer: whatever the names, subject and bodies, a standard reader gets back
exactly what we wrote, and every line stays within the RFC limits."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.headerregistry import Address

from hypothesis import given, settings
from hypothesis import strategies as st

from mailgate.outbound.mime import (
    _base64_length,
    address_list,
    clean_header_text,
    encode_subject,
    write_mail,
)

# Text a template can produce: any character but surrogates, with lines of any length.
body_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=2000)
names = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80)
local_parts = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s
)


def _normalised(text: str) -> str:
    """What a body reads as once written: CRLF line ends, no trailing line breaks."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    return "\r\n".join(lines)


def _read(raw: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(raw, policy=policy.default)


def _line_lengths_ok(raw: bytes) -> bool:
    """RFC 5322: no line over 998 octets; ours stay within 78 except an unbreakable token."""
    return all(len(line) <= 998 for line in raw.split(b"\r\n"))


@settings(max_examples=150, deadline=None)
@given(text=body_text, html=st.none() | body_text, subject=names)
def test_bodies_and_subject_read_back_exactly(text: str, html: str | None, subject: str) -> None:
    raw = write_mail(
        [("Subject", encode_subject(subject)), ("Message-ID", "<mg.1.a.b@example.com>")],
        text,
        html,
        "ro",
    )
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line ends only
    assert _line_lengths_ok(raw)
    mail = _read(raw)
    assert not mail.defects
    assert mail["Subject"] == clean_header_text(subject)
    assert mail["Content-Language"] == "ro"
    assert mail["MIME-Version"] == "1.0"
    if html is None:
        assert mail.get_content_type() == "text/plain"
        parts = [mail]
    else:
        assert mail.get_content_type() == "multipart/alternative"
        parts = list(mail.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part, written in zip(parts, [text, html], strict=False):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] in {"7bit", "quoted-printable", "base64"}
        assert not part.defects
        read = part.get_payload(decode=True).decode("utf-8")
        assert _normalised(read) == _normalised(written or "")


@settings(max_examples=150, deadline=None)
@given(
    people=st.lists(st.tuples(names, local_parts), min_size=1, max_size=6),
)
def test_address_lists_read_back_exactly(people: list[tuple[str, str]]) -> None:
    addresses = [
        Address(display_name=clean_header_text(name), username=local, domain="shop.example")
        for name, local in people
    ]
    value = address_list(addresses, name="To")
    header_lines = f"To: {value}".split("\r\n")
    assert all(len(line) <= 78 or " " not in line.strip() for line in header_lines)
    read = _read(f"To: {value}\r\n\r\n".encode("ascii"))["To"].addresses
    assert [a.addr_spec for a in read] == [a.addr_spec for a in addresses]
    for address, got in zip(addresses, read, strict=True):
        if address.display_name.isascii():
            assert got.display_name == address.display_name
        else:
            # Python's address parser keeps the space between two encoded words, which
            # RFC 2047 §6.2 (and every mail client) drops: check with a decoder that drops it.
            words = [w for w in value.replace("\r\n ", " ").split(" ") if w.startswith("=?")]
            assert words
            assert address.display_name in str(make_header(decode_header(" ".join(words))))


def test_a_short_ascii_body_is_sent_as_it_is() -> None:
    raw = write_mail([], "Hello,\nyour ticket is #12.\n", None, "en")
    assert b"Content-Transfer-Encoding: 7bit" in raw
    assert raw.endswith(b"\r\n\r\nHello,\r\nyour ticket is #12.\r\n")


def test_mostly_latin_text_is_quoted_printable_and_other_scripts_base64() -> None:
    dutch = "Wij hebben uw vraag ontvangen en komen er zo snel mogelijk op terug, één moment.\n"
    assert b"Content-Transfer-Encoding: quoted-printable" in write_mail([], dutch * 5, None, "nl")
    greek = "\u0395\u03c5\u03c7\u03b1\u03c1\u03b9\u03c3\u03c4\u03bf\u03cd\u03bc\u03b5 " * 9
    assert b"Content-Transfer-Encoding: base64" in write_mail([], greek, None, "el")


@given(data=st.binary(max_size=3000))
def test_the_length_of_base64_is_known_without_encoding(data: bytes) -> None:
    """``_encode_body`` compares quoted-printable with base64 by length and encodes base64
    only when it is shorter: the length it computes must be the one encoding gives."""
    encoded = base64.encodebytes(data).decode("ascii").rstrip("\n").replace("\n", "\r\n")
    assert _base64_length(len(data)) == len(encoded)


def test_the_boundary_is_in_no_body() -> None:
    raw = write_mail([], "text", "<p>html</p>", "en")
    boundary = _read(raw).get_boundary()
    assert boundary and raw.count(f"--{boundary}".encode()) == 3
    assert raw.endswith(f"--{boundary}--\r\n".encode())


# Latin text with diacritics (quoted-printable wins over base64), blanks and tabs at line
# ends, and lines longer than 76: where an encoder must break lines and encode blanks.
latin_lines = st.lists(
    st.text(alphabet="aeioustă îșțç=.\t ", max_size=120), min_size=1, max_size=12
).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(text=latin_lines)
def test_quoted_printable_lines_stay_within_76_and_read_back(text: str) -> None:
    raw = write_mail([], text, None, "ro")
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"quoted-printable" in head:
        assert all(len(line) <= 76 for line in body.split(b"\r\n"))  # RFC 2045 6.7
        assert all(not line.endswith((b" ", b"\t")) for line in body.split(b"\r\n"))
    read = _read(raw).get_payload(decode=True).decode("utf-8")
    assert _normalised(read) == _normalised(text)
