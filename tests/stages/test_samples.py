"""The sample mails in samples/eml/ are valid mail, and screen as their README promises.

A newcomer's first contact with Mailgate is feeding these files in; a broken header or a
README that promises the wrong outcome would mislead them.
"""

from __future__ import annotations

import email
import email.policy
import re
import struct
import zlib
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from mailgate.parse import parse_mail
from mailgate.screen import OwnMail, bounced_message_ids, bounced_recipients, screen
from mailgate.values import Envelope, ParsedMail, Verdict

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "eml"
README = SAMPLES / "README.md"
FILES = sorted(path.name for path in SAMPLES.glob("*.eml"))
# The built-in defaults: support@localhost, our Message-IDs in the domain "localhost".
OWN = OwnMail(addresses=("support@localhost",), message_id_domain="localhost")
REQUIRED_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type")
ROW_RE = re.compile(r"^\|\s*`(?P<file>[^`]+\.eml)`\s*\|(?P<cells>.*)\|\s*$", re.MULTILINE)

Reader = Callable[[bytes], ParsedMail]
READERS = [pytest.param(parse_mail, id="parse_mail")]


def _promised_verdicts() -> dict[str, Verdict]:
    """file name → the verdict in the README table's "screen" column (the third cell)."""
    promised: dict[str, Verdict] = {}
    for row in ROW_RE.finditer(README.read_text(encoding="utf-8")):
        cells = [cell.strip() for cell in row["cells"].split("|")]
        promised[row["file"]] = Verdict(cells[2].strip("`"))
    return promised


def _message(name: str) -> EmailMessage:
    raw = (SAMPLES / name).read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_there_are_at_least_fourteen_samples_and_readme_lists_each() -> None:
    assert len(FILES) >= 14
    assert sorted(_promised_verdicts()) == FILES


@pytest.mark.parametrize("name", FILES)
def test_sample_parses_without_defects(name: str) -> None:
    defects = [(part.get_content_type(), part.defects) for part in _message(name).walk()]
    assert [d for d in defects if d[1]] == []


@pytest.mark.parametrize("name", FILES)
def test_sample_has_the_required_headers(name: str) -> None:
    message = _message(name)
    for header in REQUIRED_HEADERS:
        assert message[header], f"{name}: no {header}"
    assert "support@localhost" in str(message["To"])
    assert message["MIME-Version"] == "1.0"
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(message["Message-ID"]))
    assert parsedate_to_datetime(str(message["Date"])).tzinfo is not None
    assert "=?" not in str(message["Subject"])  # every encoded word decodes


@pytest.mark.parametrize("name", FILES)
def test_sample_text_parts_name_their_charset(name: str) -> None:
    for part in _message(name).walk():
        # (the field blocks of a message/delivery-status part have no Content-Type at all)
        if part.get_content_maintype() == "text" and "Content-Type" in part:
            assert part.get_param("charset"), f"{name}: {part.get_content_type()} has no charset"


@pytest.mark.parametrize("name", FILES)
def test_sample_is_7bit_clean_in_headers_and_consistent_in_line_ends(name: str) -> None:
    """Non-ASCII header text is RFC 2047-encoded; lines end all in LF or all in CRLF."""
    raw = (SAMPLES / name).read_bytes()
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    crlf = raw.count(b"\r\n")
    assert crlf in (0, raw.count(b"\n"))


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize("name", FILES)
def test_sample_screens_as_the_readme_promises(name: str, read: Reader) -> None:
    """Imported from a file, so the envelope sender is unknown."""
    result = screen(read((SAMPLES / name).read_bytes()), Envelope(), OWN)
    assert result.verdict is _promised_verdicts()[name], result.reason


@pytest.mark.parametrize("read", READERS)
def test_bounce_sample_names_the_failed_recipient_and_our_message_id(read: Reader) -> None:
    bounce = read((SAMPLES / "10-bounce-dsn.eml").read_bytes())
    assert bounced_recipients(bounce) == ("warehouse@example-shop.com",)
    assert bounced_message_ids(bounce)[0] == "mg.5.h3k8p2z7.c41e09fb@localhost"


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


@pytest.mark.parametrize(
    ("name", "inline"), [("08-en-screenshot.eml", False), ("13-ro-inline-image-html.eml", True)]
)
def test_sample_images_are_valid_png(name: str, inline: bool) -> None:
    message = _message(name)
    images = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1
    image = images[0]
    assert (image.get_content_disposition() == "inline") is inline
    data = image.get_payload(decode=True)
    assert isinstance(data, bytes)
    chunks = _png_chunks(data)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height = struct.unpack(">II", chunks[0][1][:8])
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + 3 * width)  # 8-bit RGB, one filter byte a row
    if inline:  # the HTML shows it through its Content-ID
        html = next(p for p in message.walk() if p.get_content_type() == "text/html")
        assert f"cid:{str(image['Content-ID']).strip('<>')}" in html.get_content()
