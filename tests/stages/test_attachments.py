"""Attachment policy: magic numbers, declared types checked against them, size limits.

Files are made here with the real formats' headers (and real zip containers for the office
types), so the sniffing is tested on what mail clients actually send.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from mailgate.attachments import detected_type, keep_attachments, too_large_context
from mailgate.config import AttachmentSettings
from mailgate.sniff import is_compatible, normalize_type, sniff_type
from mailgate.values import ParsedAttachment
from store.enums import AttachmentStatus
from store.raw import BlobStore


def png(width: int = 1, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * (width + 1) * height)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def zip_with(*names: str, first: tuple[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        if first is not None:  # ODF: "mimetype" first and stored, not compressed
            archive.writestr(zipfile.ZipInfo(first[0]), first[1])
        for name in names:
            archive.writestr(name, "<xml/>")
    return out.getvalue()


def windows_exe() -> bytes:
    dos = bytearray(b"MZ" + b"\x00" * 62)
    dos[60:64] = (64).to_bytes(4, "little")
    return bytes(dos) + b"PE\x00\x00" + b"\x00" * 64


DOCX = zip_with("[Content_Types].xml", "word/document.xml")
XLSX = zip_with("[Content_Types].xml", "xl/workbook.xml")
ODS = zip_with("content.xml", first=("mimetype", "application/vnd.oasis.opendocument.spreadsheet"))


DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (png(), "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "image/heic"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
        (b"\r\n\r\n%PDF-1.4\n", "application/pdf"),  # junk before the header, as readers allow
        (DOCX, DOCX_TYPE),
        (XLSX, XLSX_TYPE),
        (ODS, "application/vnd.oasis.opendocument.spreadsheet"),
        (zip_with("photos/1.jpg"), "application/zip"),
        (b"PK\x03\x04 a truncated zip", "application/zip"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 32, "application/x-ole-storage"),
        (windows_exe(), "application/x-msdownload"),
        (b"\x7fELF\x02\x01\x01", "application/x-executable"),
        (b"\x1f\x8b\x08\x00", "application/gzip"),
        (b"sku;name;price\nABC-1;Mug;12.50\n", None),  # CSV: text has no magic number
        (b"MZ is where the CSV starts\n" * 4, None),  # "MZ" alone does not make a program
        (b"", None),
    ],
)
def test_the_bytes_say_what_a_file_is(content: bytes, expected: str | None) -> None:
    assert sniff_type(content) == expected


@pytest.mark.parametrize(
    ("declared", "sniffed"),
    [
        ("image/jpg", "image/jpeg"),
        ("IMAGE/PNG; name=shot.png", "image/png"),
        ("application/x-zip-compressed", "application/zip"),
        ("application/vnd.ms-excel", "application/x-ole-storage"),
        (DOCX_TYPE, "application/zip"),
        ("application/zip", XLSX_TYPE),
        ("image/heif", "image/heic"),
    ],
)  # fmt: skip
def test_fair_names_for_a_type_are_accepted(declared: str, sniffed: str) -> None:
    assert is_compatible(declared, sniffed)


@pytest.mark.parametrize(
    ("declared", "sniffed"),
    [
        ("application/pdf", "application/x-msdownload"),
        ("image/png", "image/jpeg"),
        ("application/msword", "application/zip"),
        ("application/octet-stream", "image/png"),  # not a lie, but the bytes know better
    ],
)
def test_declared_types_that_do_not_fit_the_bytes(declared: str, sniffed: str) -> None:
    assert not is_compatible(declared, sniffed)


def test_aliases_are_normalized() -> None:
    assert normalize_type(" Image/JPG ; name=a.jpg") == "image/jpeg"


def test_the_detected_type_is_recorded_only_when_the_declared_one_lies() -> None:
    assert detected_type("image/png", png()) is None
    assert detected_type("text/csv", b"a;b\n1;2\n") is None
    assert detected_type("application/pdf", windows_exe()) == "application/x-msdownload"
    assert detected_type("application/octet-stream", png()) == "image/png"


# -- sizes and storage --------------------------------------------------------------------


def attachment(name: str, content: bytes, content_type: str = "image/png") -> ParsedAttachment:
    return ParsedAttachment(filename=name, content_type=content_type, content=content)


def test_files_over_the_per_file_limit_are_not_stored(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    limits = AttachmentSettings(max_size=1000, max_total_size=10_000)
    small, big = b"s" * 1000, b"b" * 1001
    records = keep_attachments(
        [attachment("a.png", small), attachment("b.mp4", big)], blobs, limits
    )
    assert [r.status for r in records] == [AttachmentStatus.STORED, AttachmentStatus.TOO_LARGE]
    assert [r.size for r in records] == [1000, 1001]
    assert blobs.exists(records[0].sha256)
    assert not blobs.exists(records[1].sha256)  # the bytes stay in the raw mail only


def test_the_per_mail_limit_keeps_files_in_order_while_they_fit(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    limits = AttachmentSettings(max_size=600, max_total_size=1000)
    files = [attachment("one", b"1" * 600), attachment("two", b"2" * 500), attachment("3", b"3")]
    records = keep_attachments(files, blobs, limits)
    assert [r.status for r in records] == [
        AttachmentStatus.STORED,
        AttachmentStatus.TOO_LARGE,  # 600 + 500 > 1000
        AttachmentStatus.STORED,  # 600 + 1 still fits: a small file after a big one is kept
    ]


def test_the_same_file_twice_in_one_mail_counts_once(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    limits = AttachmentSettings(max_size=600, max_total_size=600)
    logo = png(40, 40)
    assert len(logo) < 600
    records = keep_attachments(
        [attachment("logo.png", logo), attachment("logo(1).png", logo)], blobs, limits
    )
    assert {r.status for r in records} == {AttachmentStatus.STORED}
    assert records[0].sha256 == records[1].sha256
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_the_template_context_lists_only_the_files_left_out(tmp_path: Path) -> None:
    limits = AttachmentSettings(max_size=10, max_total_size=100)
    records = keep_attachments(
        [attachment("ok.txt", b"ok", "text/plain"), attachment("video.mp4", b"v" * 11)],
        BlobStore(tmp_path),
        limits,
    )
    assert too_large_context(records, limits) == {
        "too_large": [{"filename": "video.mp4", "size": 11}],
        "attachment_limits": {"file": 10, "mail": 100},
    }
