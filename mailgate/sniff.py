"""Attachment policy helper (pipeline, before apply): what a file's bytes say it is.

A sender's ``Content-Type`` is a claim: mail clients guess it from the file name, and a
hostile sender picks whatever gets past a filter. ``sniff_type`` reads the magic numbers
of the formats merchants actually send (screenshots, PDFs, office files, archives) and of
the executables nobody should, and ``is_compatible`` tells whether the claim fits them.
Text formats (CSV, HTML, plain text) have no magic number and are never second-guessed.
"""

from __future__ import annotations

import io
import re
import zipfile

OCTET_STREAM = "application/octet-stream"
ZIP = "application/zip"
OLE2 = "application/x-ole-storage"  # legacy Office (doc/xls/ppt) and Outlook .msg files

# (offset, magic bytes, type): the first match wins, so longer and more specific first.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"\x00\x00\x01\x00", "image/vnd.microsoft.icon"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", OLE2),
    (0, b"{\\rtf", "application/rtf"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"Rar!\x1a\x07", "application/vnd.rar"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
)

# ISO base media files (MP4, MOV, HEIC): "ftyp" at offset 4, then the brand.
_FTYP_BRANDS = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"avif": "image/avif",
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
}

# RIFF containers: the form type at offset 8.
_RIFF_FORMS = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}

# Zip containers, told apart by the members every such file has.
_ZIP_MEMBERS = (
    ("word/", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("xl/", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("ppt/", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    ("META-INF/MANIFEST.MF", "application/java-archive"),
)
# ODF files start with an uncompressed member "mimetype" that names their type.
_ODF_MIMETYPE = re.compile(rb"mimetype(application/vnd\.oasis\.opendocument\.[a-z.-]{1,60})")

# Names mail clients use for the same type.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/x-icon": "image/vnd.microsoft.icon",
    "application/x-pdf": "application/pdf",
    "application/acrobat": "application/pdf",
    "application/x-zip": ZIP,
    "application/x-zip-compressed": ZIP,
    "application/x-gzip": "application/gzip",
    "application/x-rar-compressed": "application/vnd.rar",
    "application/x-rar": "application/vnd.rar",
    "text/rtf": "application/rtf",
    "application/x-msdos-program": "application/x-msdownload",
    "application/x-dosexec": "application/x-msdownload",
    "application/vnd.microsoft.portable-executable": "application/x-msdownload",
    "audio/mp3": "audio/mpeg",
}

# Types that say "some bytes": never a lie, but the sniffed type is worth recording.
_GENERIC = {
    OCTET_STREAM,
    "application/unknown",
    "application/binary",
    "application/download",
    "application/x-download",
    "application/force-download",
    "binary/octet-stream",
    "",
}

# Formats that are zip or OLE2 files inside: a bare "zip" or "OLE2" verdict fits them.
_ZIP_BASED_PREFIXES = (
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.",
    "application/vnd.ms-excel.sheet.macroenabled",
    "application/vnd.ms-word.document.macroenabled",
    "application/vnd.ms-powerpoint.presentation.macroenabled",
    "application/java-archive",
    "application/epub+zip",
    "application/vnd.android.package-archive",
    ZIP,
)
_OLE2_BASED = {
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.ms-outlook",
    "application/vnd.visio",
    "application/x-msi",
}


def normalize_type(content_type: str) -> str:
    """``content_type`` lower-cased, without parameters, with common aliases resolved."""
    bare = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare)


def sniff_type(content: bytes) -> str | None:
    """The media type the bytes show, or None when they show none (text, unknown)."""
    for offset, magic, media_type in _MAGIC:
        if content.startswith(magic, offset):
            return media_type
    for kind_of in (_riff_kind, _executable_kind, _iso_media_kind, _pdf_kind, _zip_kind):
        found = kind_of(content)
        if found is not None:
            return found
    return None


def is_compatible(declared: str, sniffed: str) -> bool:
    """True when the declared type is a fair name for what the bytes are."""
    claim, found = normalize_type(declared), normalize_type(sniffed)
    if claim == found:
        return True
    if claim in _GENERIC:
        return False  # not a lie, but the bytes know better: worth recording
    if found == ZIP:
        return claim.startswith(_ZIP_BASED_PREFIXES)
    if claim == ZIP:
        return found.startswith(_ZIP_BASED_PREFIXES)
    if found == OLE2:
        return claim in _OLE2_BASED
    # HEIF and HEIC name the same container; clients use either.
    return {claim, found} <= {"image/heic", "image/heif"}


def _riff_kind(content: bytes) -> str | None:
    return _RIFF_FORMS.get(content[8:12]) if content.startswith(b"RIFF") else None


def _iso_media_kind(content: bytes) -> str | None:
    if content[4:8] != b"ftyp":
        return None
    return _FTYP_BRANDS.get(content[8:12], "video/mp4")


def _pdf_kind(content: bytes) -> str | None:
    # Readers accept up to 1 KiB of junk before the header, and so do we.
    return "application/pdf" if b"%PDF-" in content[:1024] else None


def _executable_kind(content: bytes) -> str | None:
    # "MZ" alone is two letters a text file may start with; a real one points to "PE\0\0".
    if not content.startswith(b"MZ") or len(content) < 64:
        return None
    pe_offset = int.from_bytes(content[60:64], "little")
    is_pe = content[pe_offset : pe_offset + 4] == b"PE\x00\x00"
    return "application/x-msdownload" if is_pe else None


def _zip_kind(content: bytes) -> str | None:
    if not content.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return None
    odf = _ODF_MIMETYPE.match(content, 30)  # 30: the size of a zip local file header
    if odf:
        return odf[1].decode("ascii")
    try:
        # Only the central directory is read: nothing is decompressed, so a zip bomb
        # costs nothing here.
        names = zipfile.ZipFile(io.BytesIO(content)).namelist()
    except Exception:  # any corrupt archive is still "a zip"; sniffing never fails a mail
        return ZIP
    for member, media_type in _ZIP_MEMBERS:
        if any(name.startswith(member) for name in names):
            return media_type
    return ZIP
