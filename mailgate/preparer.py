"""Stages 2-5a, the half of the pipeline that needs no database: keep the raw bytes,
parse, screen, authenticate, keep attachment files, detect the language, and read what
the words say (stage 7's reading, ``mailgate.interpret``).

The files are written but not yet synced: ``make_durable`` syncs a whole batch's at
once, and the commit half runs it beside the batch's statements and commits only once it
has ended (``Pipeline.commit``), so a mail is still never committed, nor acknowledged,
before its raw bytes are durable.

``Preparer`` holds only what these stages need (blob stores, our own addresses, the
authentication policy and its resolver), so it can be built without a store: in a
thread of the gateway, or in a child process of ``mailgate.prepare_pool``, where its
CPU does not take turns with the writer's on one interpreter lock. ``Prepared`` is what
it hands to the commit half; it pickles, so that it can cross a process boundary.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from mailgate.attachments import keep_attachments, stored_files
from mailgate.auth import authenticate
from mailgate.config import AttachmentSettings, AuthSettings
from mailgate.dkim import restrict_to_signed
from mailgate.errors import ParseFailure
from mailgate.interpret import Reading, WordReader
from mailgate.language import Detected, detect_in_mail, supported_language
from mailgate.parse import parse_mail
from mailgate.resolver import Resolver
from mailgate.screen import OwnMail, screen
from mailgate.threader import has_ticket_tag
from mailgate.triage import TriageRules
from mailgate.values import (
    Arrival,
    AuthResult,
    ParsedMail,
    ScreenResult,
    Verdict,
)
from store.errors import StoreUnavailable
from store.raw import BlobRef, Blobs
from store.tickets import NewAttachment

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A mail after the stages that need no database."""

    arrival: Arrival
    raw: BlobRef
    mail: ParsedMail
    attachments: tuple[NewAttachment, ...]
    screened: ScreenResult
    auth: AuthResult
    dedupe_key: str
    failure: str | None = None  # set when a stage crashed: the mail is suspended
    # The language of the merchant's words, for a mail likely to open a ticket (None:
    # not detected here; the apply stage detects it if it does open one).
    detected: Detected | None = None
    # What its words say (triage, commands, confidentiality); None for a mail no stage
    # read, or a ``Prepared`` made elsewhere (the commit half then reads them).
    reading: Reading | None = None


@dataclass
class Preparer:
    raws: Blobs
    blobs: Blobs
    own: OwnMail
    auth_policy: AuthSettings
    attachment_limits: AttachmentSettings = field(default_factory=AttachmentSettings)
    resolver: Resolver | None = None  # None: no DNS, so no DKIM of our own (stage tests)
    # The rules the words are read with; the commit half reads with them too when a
    # ``Prepared`` comes without its reading.
    words: WordReader = field(default_factory=lambda: WordReader(TriageRules.load()))

    def prepare(self, arrival: Arrival) -> Prepared:
        # StoreUnavailable: nothing kept, answer 451.
        raw = self.raws.keep(arrival.raw, durable=False)
        try:
            mail = parse_mail(arrival.raw)
            screened = screen(mail, arrival.envelope, self.own)
            auth = authenticate(arrival.raw, mail, self.auth_policy, self.resolver)
            if auth.signed_body_length is not None:
                # Only the signed part is the sender's: text past l= is not shown as theirs.
                mail = restrict_to_signed(
                    arrival.raw, mail, auth.signed_body_length, relaxed=auth.relaxed_body
                )
            attachments = keep_attachments(
                mail.attachments, self.blobs, self.attachment_limits, durable=False
            )
            detected = detect_if_new(mail, screened)
            reading = self.words.read(mail)
        except StoreUnavailable:
            raise
        except ParseFailure as exc:  # blank: no mail to read, and no bug of ours
            log.warning("mail %s suspended: %s", raw.sha256, exc)
            return failed(arrival, raw, str(exc))
        except Exception as exc:  # a bug must not lose the mail: suspend it instead
            log.exception("preparing mail %s failed", raw.sha256)
            return failed(arrival, raw, f"{type(exc).__name__}: {exc}")
        key = dedupe_key(mail)
        return Prepared(
            arrival, raw, mail, attachments, screened, auth, key, detected=detected, reading=reading
        )

    def unprocessed(self, arrival: Arrival, why: str) -> Prepared:
        """The mail kept raw, no stage run on it: it is to be suspended (``why``)."""
        return failed(arrival, self.raws.keep(arrival.raw, durable=False), why)

    def make_durable(self, batch: Iterable[Prepared]) -> None:
        """Sync the files of ``batch``'s mails (raw and attachments), all at once; raises
        ``StoreUnavailable`` when the disk refuses."""
        batch = list(batch)
        self.raws.make_durable(prepared.raw.sha256 for prepared in batch)
        self.blobs.make_durable(
            sha for prepared in batch for sha in stored_files(prepared.attachments)
        )


def detect_if_new(mail: ParsedMail, screened: ScreenResult) -> Detected | None:
    """The language of a mail that will likely open a ticket, detected outside the write
    transaction: not for service mail, nor when the mail's Content-Language decides, nor
    for a reply (a ticket tag, In-Reply-To or References), which mostly joins a ticket
    and keeps its language; a reply that does open one is detected in the apply stage."""
    if not screened.is_ok or supported_language(mail.content_language) is not None:
        return None
    if has_ticket_tag(mail.subject) or mail.in_reply_to or mail.references:
        return None
    return detect_in_mail(mail.subject, mail.reply_text or mail.body_text)


def dedupe_key(mail: ParsedMail) -> str:
    """The same Message-ID AND the same content: the same delivery."""
    return hashlib.sha256(f"{mail.message_id or ''}\0{mail.content_digest}".encode()).hexdigest()


def failed(arrival: Arrival, raw: BlobRef, why: str) -> Prepared:
    """A mail no stage could read, to be kept as suspended ``processing_error``."""
    empty = ParsedMail.unread(text="", content_digest=raw.sha256, defects=())
    return Prepared(
        arrival,
        raw,
        empty,
        (),
        ScreenResult(Verdict.OK),
        AuthResult(),
        hashlib.sha256(f"\0{raw.sha256}".encode()).hexdigest(),
        failure=why,
    )
