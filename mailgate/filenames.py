"""Attachment filenames made safe to store and to offer for download (used by ``parse``).

A filename comes from the sender: it may carry a path (``../../etc/passwd``), control or
bidi-override characters ("invoice<U+202E>fdp.exe" shows as "invoiceexe.pdf"), a leading dot
that hides the file, Windows device names, or enough bytes to overflow NAME_MAX. What
``safe_filename`` returns is a plain, visible, bounded name, unique within one message.
"""

from __future__ import annotations

import contextlib
import mimetypes
import re
import unicodedata
from urllib.parse import unquote_to_bytes

from mailgate.charsets import decode_text, normalize_charset
from mailgate.header_values import decode_encoded_words

MAX_FILENAME_BYTES = 255  # NAME_MAX on Linux and macOS, in UTF-8 bytes
_MAX_EXTENSION_BYTES = 32  # anything longer is part of the name, not a type
_FALLBACK = "attachment"

# RFC 2231 extended value left undecoded: charset'language'percent-encoded.
_RFC2231_VALUE = re.compile(r"^([A-Za-z0-9_.:-]{1,40})'[A-Za-z0-9-]{0,20}'(.*)$", re.S)
# Characters Windows refuses in names; ":" also opens NTFS alternate data streams.
_WINDOWS_RESERVED = re.compile(r'[<>:"|?*]')
_WHITESPACE = re.compile(r"\s+")
# Controls, format characters (bidi overrides, zero-width), surrogates, private use and
# unassigned code points: none of them belongs in a name a person reads.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_FALLBACK_NAMES = {
    "message/rfc822": "message.eml",
    "message/delivery-status": "delivery-status.txt",
    "message/disposition-notification": "disposition-notification.txt",
    "text/rfc822-headers": "headers.txt",
    "text/plain": "attachment.txt",
    "text/html": "attachment.html",
    "text/calendar": "invite.ics",
    "text/csv": "attachment.csv",
    "text/x-vcard": "contact.vcf",
    "text/vcard": "contact.vcf",
    "image/png": "image.png",
    "image/jpeg": "image.jpg",
    "image/jpg": "image.jpg",
    "image/gif": "image.gif",
    "image/webp": "image.webp",
    "image/bmp": "image.bmp",
    "image/tiff": "image.tiff",
    "image/heic": "image.heic",
    "image/svg+xml": "image.svg",
    "application/pdf": "attachment.pdf",
    "application/zip": "attachment.zip",
    "application/pgp-signature": "signature.asc",
    "application/pgp-encrypted": "pgp-version.txt",
    "application/pkcs7-signature": "smime.p7s",
    "application/x-pkcs7-signature": "smime.p7s",
    "application/pkcs7-mime": "smime.p7m",
    "application/ms-tnef": "winmail.dat",
    "application/vnd.ms-tnef": "winmail.dat",
    "application/msword": "attachment.doc",
    "application/vnd.ms-excel": "attachment.xls",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "attachment.docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "attachment.xlsx",
    "application/json": "attachment.json",
    "application/xml": "attachment.xml",
}
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", "clock$"}
    | {f"com{digit}" for digit in range(10)}
    | {f"lpt{digit}" for digit in range(10)}
)


def safe_filename(name: str | None, fallback: str, taken: set[str]) -> str:
    """A safe, unique name for an attachment called ``name`` by its sender.

    ``fallback`` is used when nothing usable is left of ``name`` (it is made safe the
    same way). ``taken`` holds the case-folded names already given to this message's
    attachments (case-insensitive file systems would merge "A.pdf" and "a.pdf"); the
    returned name is added to it. A repeated name gets " (2)", " (3)"… before its
    extension.
    """
    cleaned = _cleaned(name) if name else ""
    if not cleaned:
        cleaned = _cleaned(fallback) or _FALLBACK
    unique = _unique(_bounded(cleaned), taken)
    taken.add(unique.casefold())
    return unique


def fallback_name(content_type: str) -> str:
    """A name for an attachment sent without one, from its type ("image.png")."""
    if content_type in _FALLBACK_NAMES:
        return _FALLBACK_NAMES[content_type]
    # mimetypes reads the system's tables, which differ between machines: the common
    # types are in the table above so a name does not depend on where Mailgate runs.
    extension = mimetypes.guess_extension(content_type, strict=False)
    return f"attachment{extension}" if extension else "attachment.bin"


def _cleaned(name: str) -> str:
    name = _decoded(name)
    # Both separators, on every OS: a name built on Windows may use either.
    parts = [part for part in name.replace("\\", "/").split("/") if part.strip(" .")]
    name = parts[-1] if parts else ""
    name = "".join(
        " " if char in "\t\n\r" else char
        for char in unicodedata.normalize("NFC", name)
        if unicodedata.category(char) not in _INVISIBLE_CATEGORIES or char in "\t\n\r"
    )
    name = _WINDOWS_RESERVED.sub("_", _WHITESPACE.sub(" ", name))
    # No hidden files, and no names Windows silently changes (trailing dots and spaces).
    name = name.strip().lstrip(". ").rstrip(". ")
    stem = name.split(".")[0].strip().lower()
    if stem in _WINDOWS_DEVICES:
        name = "_" + name
    return name


def _decoded(name: str) -> str:
    """The name as its sender wrote it: RFC 2231 and RFC 2047 encodings undone."""
    extended = _RFC2231_VALUE.match(name)
    if extended and normalize_charset(extended[1]) and "%" in extended[2]:
        name = decode_text(unquote_to_bytes(extended[2]), extended[1]).text
    if "=?" in name:
        name = decode_encoded_words(name)
    if any("\udc80" <= char <= "\udcff" for char in name):  # raw 8-bit bytes
        # With other lone surrogates too it cannot be encoded: they are dropped below.
        with contextlib.suppress(UnicodeEncodeError):
            name = decode_text(name.encode("utf-8", "surrogateescape")).text
    return name


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, extension = name.rpartition(".")
    if (
        not dot
        or not stem
        or len(extension.encode()) + 1 > _MAX_EXTENSION_BYTES
        or (" " in extension)
    ):
        return name, ""
    return stem, "." + extension


def _bounded(name: str, suffix: str = "") -> str:
    """``name`` with ``suffix`` before its extension, cut to MAX_FILENAME_BYTES."""
    stem, extension = _split_extension(name)
    budget = MAX_FILENAME_BYTES - len((suffix + extension).encode())
    stem_bytes = stem.encode()
    if len(stem_bytes) > budget:
        stem = stem_bytes[:budget].decode("utf-8", "ignore").rstrip(" .")
    return stem + suffix + extension


def _unique(name: str, taken: set[str]) -> str:
    if name.casefold() not in taken:
        return name
    number = 2
    while True:
        candidate = _bounded(name, f" ({number})")
        if candidate.casefold() not in taken:
            return candidate
        number += 1
