"""The pipeline: every way in hands an ``Arrival`` here and gets an ``Outcome`` back.

Two halves, so that many mails can share one commit (group commit) while each is still
committed before it is acknowledged:

- ``prepare`` (no database): keep the raw bytes durably, parse, screen, authenticate,
  keep attachment files. Safe to run in parallel threads.
- ``commit`` (one transaction for a batch): per mail, in its own savepoint, the stages
  that read the store — duplicate check, identify, thread, interpret, decide — and apply.

A bug in any stage never loses a mail: the mail is committed as suspended with reason
``processing_error`` (Mailman's shunt queue). Only ``StoreUnavailable`` escapes, and it
means "not committed, answer 451 / exit 75".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session

from mailgate.addresses import OurAddresses
from mailgate.apply import Applier, MailFacts, Outcome, new_raw
from mailgate.attachments import keep_attachments
from mailgate.auth import authenticate
from mailgate.automated import screen_service_mail
from mailgate.confidential import ConfidentialRules
from mailgate.config import AttachmentSettings, AuthSettings
from mailgate.decide import decide
from mailgate.dkim import UNSIGNED_TAIL_DEFECT, restrict_to_signed
from mailgate.identify import identify
from mailgate.interpret import interpret
from mailgate.language import Detected, detect_in_mail, supported_language
from mailgate.logs import log_mail
from mailgate.parse import parse_mail
from mailgate.resolver import Resolver
from mailgate.screen import OwnMail, screen
from mailgate.threader import SignedIds, has_ticket_tag, thread_for
from mailgate.triage import TriageRules
from mailgate.values import (
    Arrival,
    AuthResult,
    Envelope,
    ParsedMail,
    ScreenResult,
    SenderKind,
    Source,
    ThreadDecision,
    ThreadedBy,
    Verdict,
)
from store.db import Database
from store.enums import RawOutcome
from store.errors import StoreUnavailable
from store.locks import lock_in_order
from store.lookups import StoreReader
from store.raw import BlobRef, Blobs
from store.suspended import mark_released
from store.tickets import NewAttachment, NewRaw, audit, record_raw, suspend

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


@dataclass
class Pipeline:
    db: Database
    raws: Blobs
    blobs: Blobs
    ours: OurAddresses
    own: OwnMail
    auth_policy: AuthSettings
    rules: TriageRules
    applier: Applier
    clock: Callable[[], datetime]
    attachment_limits: AttachmentSettings = field(default_factory=AttachmentSettings)
    resolver: Resolver | None = None  # None: no DNS, so no DKIM of our own (stage tests)
    signed_ids: SignedIds | None = None  # checks our mg.… Message-IDs before they thread
    confidential_rules: ConfidentialRules | None = None

    def process(self, arrival: Arrival) -> Outcome:
        """Run every stage for one mail and commit it; raises ``StoreUnavailable``."""
        return self.commit([self.prepare(arrival)])[0]

    def release(self, suspended_id: int, *, actor: str) -> Outcome:
        """Take a suspended mail after all: run it again without the screen that held it."""
        now = self.clock()
        with self.db.write() as session:
            raw = mark_released(session, suspended_id, actor=actor, now=now)
            arrival = Arrival(
                self.raws.read(raw.sha256),
                Envelope(raw.mail_from, tuple(a for a in raw.rcpt_tos.split(",") if a)),
                Source("release"),
                now,
            )
            prepared = self.prepare(arrival)
            held = prepared.screened
            prepared = replace(
                prepared,
                screened=ScreenResult(
                    Verdict.OK,
                    f"released by {actor}"
                    + (f" (was {held.verdict.value}: {held.reason})" if not held.is_ok else ""),
                ),
            )
            audit(
                session,
                None,
                actor=actor,
                action="release",
                now=now,
                detail=f"suspended mail {suspended_id}",
            )
            return self._commit_one(session, StoreReader(session), prepared, now)

    def suspend_unprocessed(self, arrival: Arrival, why: str) -> Outcome:
        """Keep a mail as suspended ``processing_error`` without running a stage on it.

        For a mail that crashed the process on each of its last tries (the IMAP poller's
        attempt count). Raises ``StoreUnavailable``.
        """
        return self.commit([_failed(arrival, self.raws.keep(arrival.raw), why)])[0]

    # --- stages 2-5a: no database ---------------------------------------------------
    def prepare(self, arrival: Arrival) -> Prepared:
        raw = self.raws.keep(arrival.raw)  # StoreUnavailable: nothing kept, answer 451
        try:
            mail = parse_mail(arrival.raw)
            screened = screen(mail, arrival.envelope, self.own)
            auth = authenticate(arrival.raw, mail, self.auth_policy, self.resolver)
            if auth.signed_body_length is not None:
                # Only the signed part is the sender's: text past l= is not shown as theirs.
                mail = restrict_to_signed(
                    arrival.raw, mail, auth.signed_body_length, relaxed=auth.relaxed_body
                )
            attachments = keep_attachments(mail.attachments, self.blobs, self.attachment_limits)
            detected = _detect_if_new(mail, screened)
        except StoreUnavailable:
            raise
        except Exception as exc:  # a bug must not lose the mail: suspend it instead
            log.exception("preparing mail %s failed", raw.sha256)
            return _failed(arrival, raw, f"{type(exc).__name__}: {exc}")
        key = dedupe_key(mail)
        return Prepared(arrival, raw, mail, attachments, screened, auth, key, detected=detected)

    # --- stages 4b-8: one transaction --------------------------------------------------
    def commit(self, batch: Sequence[Prepared]) -> list[Outcome]:
        now = self.clock()
        with self.db.write() as session:
            # Gateways given the same mail (a secondary MX) take turns here; without it
            # their batches would meet on the unique dedupe key, wait for each other, and
            # PostgreSQL would end one batch as a deadlock (451 for all of its mails).
            lock_in_order(session, (f"delivery:{p.dedupe_key}" for p in batch))
            reader = StoreReader(session)
            outcomes = [self._commit_one(session, reader, prepared, now) for prepared in batch]
        committed = self.clock()
        for prepared, outcome in zip(batch, outcomes, strict=True):
            log_mail(
                prepared.arrival,
                prepared.mail.message_id,
                prepared.screened.verdict.value,
                outcome,
                committed,
            )
        return outcomes

    def _commit_one(
        self, session: Session, reader: StoreReader, prepared: Prepared, now: datetime
    ) -> Outcome:
        try:
            with session.begin_nested():
                return self._decide_and_apply(session, reader, prepared, now)
        except IntegrityError:
            # Another gateway committed the same delivery between our check and our insert.
            with session.begin_nested():
                original = reader.duplicate_of(prepared.dedupe_key)
                if original is None:
                    return self._shunt(session, prepared, "integrity error", now)
                return _record_duplicate(session, prepared, original)
        except OperationalError:
            raise
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            log.exception("database refused mail %s", prepared.raw.sha256)
            return self._shunt(session, prepared, f"{type(exc).__name__}", now)
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.exception("processing mail %s failed", prepared.raw.sha256)
            return self._shunt(session, prepared, f"{type(exc).__name__}: {exc}", now)

    def _decide_and_apply(
        self, session: Session, reader: StoreReader, prepared: Prepared, now: datetime
    ) -> Outcome:
        if prepared.failure is not None:
            return self._shunt(session, prepared, prepared.failure, now, nested=False)
        mail = prepared.mail
        earlier = reader.earlier_delivery(prepared.dedupe_key, mail.message_id)
        if earlier.duplicate_of is not None:
            return _record_duplicate(session, prepared, earlier.duplicate_of)
        flags: tuple[str, ...] = ()
        if earlier.message_id_reused:
            flags = ("message_id_reused",)
        if UNSIGNED_TAIL_DEFECT in mail.defects:
            flags = (*flags, "unsigned_text_dropped")
        sender = identify(mail, prepared.auth, reader)
        if prepared.arrival.source.kind != "release":
            prepared = replace(
                prepared, screened=screen_service_mail(prepared.screened, mail, sender)
            )
        if prepared.screened.is_ok:
            rcpts = prepared.arrival.envelope.rcpt_tos
            thread = thread_for(mail, sender, rcpts, self.ours, reader, signed_ids=self.signed_ids)
        else:
            thread = ThreadDecision(
                None, ThreadedBy.NEW, "not threaded: " + prepared.screened.verdict.value
            )
        instructions = interpret(mail, sender, self.rules, self.confidential_rules)
        disposition = decide(prepared.screened, sender, thread, instructions)
        locale = None
        if sender.kind is SenderKind.SHOP_USER and sender.address:
            user = reader.shop_user(sender.address)
            locale = user.shop_locale if user else None
        facts = MailFacts(
            prepared.arrival,
            prepared.raw,
            mail,
            prepared.attachments,
            prepared.dedupe_key,
            prepared.screened,
            prepared.auth,
            sender,
            thread,
            instructions,
            flags,
            prepared.detected,
        )
        outcome = self.applier.apply(session, disposition, facts, now, locale)
        if "message_id_reused" in flags and outcome.ticket_id is not None:
            audit(
                session,
                outcome.ticket_id,
                actor="gateway",
                action="flag",
                now=now,
                detail=f"Message-ID <{mail.message_id}> reused by a mail with other content",
            )
        return outcome

    def _shunt(
        self, session: Session, prepared: Prepared, why: str, now: datetime, *, nested: bool = True
    ) -> Outcome:
        """Keep a mail that a stage could not handle as suspended ``processing_error``."""

        def write() -> Outcome:
            raw_id = record_raw(session, _raw_of(prepared), RawOutcome.SUSPENDED)
            suspend(
                session,
                raw_id=raw_id,
                reason="processing_error",
                detail=why,
                from_address=prepared.mail.from_address,
                subject=prepared.mail.subject,
                now=now,
            )
            return Outcome("suspended", raw_id, reason="processing_error")

        if not nested:
            return write()
        with session.begin_nested():
            return write()


def _detect_if_new(mail: ParsedMail, screened: ScreenResult) -> Detected | None:
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


def _raw_of(prepared: Prepared) -> NewRaw:
    return new_raw(prepared.arrival, prepared.raw, prepared.mail.message_id, prepared.dedupe_key)


def _record_duplicate(session: Session, prepared: Prepared, original: int) -> Outcome:
    raw_id = record_raw(session, _raw_of(prepared), RawOutcome.DUPLICATE, duplicate_of=original)
    return Outcome("duplicate", raw_id, reason=f"same delivery as raw mail {original}")


def _failed(arrival: Arrival, raw: BlobRef, why: str) -> Prepared:
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
