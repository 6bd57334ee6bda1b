"""Pipeline, between parse and apply: the attachment policy — size limits, type check, storage.

Each attachment of a parsed mail is measured against the per-file and per-mail limits
(``[attachments]``). Those within are written to the content-addressed attachment store,
so a file sent twice (a logo in every signature, the same screenshot resent) is stored
once; the others stay only in the raw mail, which is always kept whole, and are recorded
as too large so that agents see them listed and the merchant is told. The declared type
is checked against the bytes, and what the bytes really are is recorded when they differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from mailgate.config import AttachmentSettings
from mailgate.sniff import is_compatible, sniff_type
from mailgate.values import ParsedAttachment
from store.enums import AttachmentStatus
from store.raw import Blobs
from store.tickets import NewAttachment


def keep_attachments(
    attachments: Sequence[ParsedAttachment],
    blobs: Blobs,
    limits: AttachmentSettings,
    *,
    durable: bool = True,
) -> tuple[NewAttachment, ...]:
    """Store the attachments that fit the limits; return the record of every one.
    With ``durable=False`` they are durable once ``stored_files`` of the records have
    been given to ``blobs.make_durable``.

    Raises ``StoreUnavailable`` when the disk refuses a file (the mail is then not
    acknowledged, and its sender retries).
    """
    records = assess_attachments(attachments, limits)
    for attachment, record in zip(attachments, records, strict=True):
        if record.status is AttachmentStatus.STORED:
            # Content-addressed: a file kept before is not written again.
            blobs.keep(attachment.content, durable=durable)
    return records


def stored_files(records: Iterable[NewAttachment]) -> Iterator[str]:
    """The sha256 of each attachment kept in the blob store."""
    return (record.sha256 for record in records if record.status is AttachmentStatus.STORED)


def assess_attachments(
    attachments: Sequence[ParsedAttachment], limits: AttachmentSettings
) -> tuple[NewAttachment, ...]:
    """The record of each attachment: sha256, what its bytes are, and whether it fits.

    Files are taken in the order they come while they fit; one that does not is left
    out, and a smaller one after it may still be taken.
    """
    taken: set[str] = set()
    taken_bytes = 0
    records: list[NewAttachment] = []
    for attachment in attachments:
        sha256 = hashlib.sha256(attachment.content).hexdigest()
        # A file already taken for this mail costs no more room: it is stored once.
        extra = 0 if sha256 in taken else attachment.size
        fits = attachment.size <= limits.max_size and taken_bytes + extra <= limits.max_total_size
        if fits:
            taken.add(sha256)
            taken_bytes += extra
        records.append(
            NewAttachment(
                filename=attachment.filename,
                content_type=attachment.content_type,
                size=attachment.size,
                sha256=sha256,
                content_id=attachment.content_id,
                inline=attachment.inline,
                status=AttachmentStatus.STORED if fits else AttachmentStatus.TOO_LARGE,
                detected_type=detected_type(attachment.content_type, attachment.content),
            )
        )
    return tuple(records)


def detected_type(declared: str, content: bytes) -> str | None:
    """What the bytes are when the declared type does not fit them, else None."""
    sniffed = sniff_type(content)
    if sniffed is None or is_compatible(declared, sniffed):
        return None
    return sniffed


def too_large_context(
    attachments: Iterable[NewAttachment], limits: AttachmentSettings
) -> dict[str, Any]:
    """Template variables that tell the merchant which files were not taken, and why."""
    return {
        "too_large": [
            {"filename": a.filename, "size": a.size}
            for a in attachments
            if a.status is AttachmentStatus.TOO_LARGE
        ],
        "attachment_limits": {"file": limits.max_size, "mail": limits.max_total_size},
    }


def has_too_large(attachments: Iterable[NewAttachment]) -> bool:
    """True when at least one attachment was over a limit and not stored."""
    return any(a.status is AttachmentStatus.TOO_LARGE for a in attachments)
