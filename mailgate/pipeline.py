"""The pipeline: every way in hands an ``Arrival`` here and gets an ``Outcome`` back.

Two halves, so that many mails can share one commit (group commit) while each is still
committed before it is acknowledged:

- ``prepare`` (no database, ``mailgate.preparer``): keep the raw bytes durably, parse,
  screen, authenticate, keep attachment files. Safe to run in parallel threads, or in
  child processes (``mailgate.prepare_pool``).
- ``commit`` (one transaction for a batch): per mail, in its own savepoint, the stages
  that read the store — duplicate check, identify, thread, interpret, decide — and apply.

A bug in any stage never loses a mail: the mail is committed as suspended with reason
``processing_error`` (Mailman's shunt queue). Only ``StoreUnavailable`` escapes, and it
means "not committed, answer 451 / exit 75".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session

from mailgate.addresses import OurAddresses
from mailgate.apply import Applier, MailFacts, Outcome, new_raw
from mailgate.automated import screen_service_mail
from mailgate.decide import decide
from mailgate.dkim import UNSIGNED_TAIL_DEFECT
from mailgate.identify import identify
from mailgate.interpret import instructions_for
from mailgate.logs import log_mail
from mailgate.preparer import Prepared, Preparer
from mailgate.threader import SignedIds, named_tickets, stored_references, thread_for
from mailgate.values import (
    Arrival,
    Envelope,
    ScreenResult,
    SenderKind,
    Source,
    ThreadDecision,
    ThreadedBy,
    Verdict,
)
from store.db import Database
from store.enums import RawOutcome
from store.errors import StoreUnavailable, TransactionConflict
from store.locks import lock_in_order
from store.lookups import Delivery, StoreReader
from store.plain import held_inserts
from store.suspended import mark_released
from store.tickets import NewRaw, audit, record_raw, suspend

log = logging.getLogger(__name__)

CONFLICT_ATTEMPTS = 3  # a batch rolled back for another transaction's sake is done again


class _TakeBack(Exception):
    """A mail of a batch without savepoints failed: the batch is rolled back."""


@dataclass
class Pipeline:
    db: Database
    preparer: Preparer
    ours: OurAddresses
    applier: Applier
    clock: Callable[[], datetime]
    signed_ids: SignedIds | None = None  # checks our mg.… Message-IDs before they thread
    # Where a batch's files are synced while its statements run: a thread that stays,
    # for starting one per batch cost the writer about 1 ms under load (bench/README.md).
    _syncs: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(thread_name_prefix="batch-sync"),
        init=False,
        repr=False,
        compare=False,
    )

    def close(self) -> None:
        """Let the sync threads go once their work is done."""
        self._syncs.shutdown(wait=True)

    def process(self, arrival: Arrival) -> Outcome:
        """Run every stage for one mail and commit it; raises ``StoreUnavailable``."""
        return self.commit([self.prepare(arrival)])[0]

    def release(self, suspended_id: int, *, actor: str) -> Outcome:
        """Take a suspended mail after all: run it again without the screen that held it."""
        now = self.clock()
        with self.db.write() as session:
            raw = mark_released(session, suspended_id, actor=actor, now=now)
            arrival = Arrival(
                self.preparer.raws.read(raw.sha256),
                Envelope(raw.mail_from, tuple(a for a in raw.rcpt_tos.split(",") if a)),
                Source("release"),
                now,
            )
            prepared = self.prepare(arrival)
            self.preparer.make_durable([prepared])
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
        return self.commit([self.preparer.unprocessed(arrival, why)])[0]

    def prepare(self, arrival: Arrival) -> Prepared:
        """Stages 2-5a (no database): see ``mailgate.preparer``."""
        return self.preparer.prepare(arrival)

    # --- stages 4b-8: one transaction --------------------------------------------------
    def commit(self, batch: Sequence[Prepared]) -> list[Outcome]:
        # Their files first: a committed mail's raw bytes must survive a power loss. The
        # sync waits on the disk, not the interpreter, so it runs beside the batch's
        # statements, and the transaction commits only once it is done (_commit_batch).
        synced = self._syncs.submit(self.preparer.make_durable, list(batch))
        try:
            now = self.clock()
            outcomes = self._commit_again_on_conflict(batch, now, synced)
        finally:
            wait([synced])  # a failed batch leaves no sync running behind it
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

    def _commit_again_on_conflict(
        self, batch: Sequence[Prepared], now: datetime, synced: Future[None]
    ) -> list[Outcome]:
        """The batch's transaction, done again when the database ended it for another's
        sake: on PostgreSQL, two gateways' batches that reply to the same two tickets in
        opposite orders meet in a deadlock, and one of them is rolled back whole. Doing
        it again is then safe, and better than a 451 for each of its mails."""
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                try:
                    return self._commit_batch(batch, now, synced, guarded=False)
                except _TakeBack:
                    return self._commit_batch(batch, now, synced, guarded=True)
            except TransactionConflict as exc:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
                log.warning("a batch of %d mails: %s; committing it again", len(batch), exc)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _commit_batch(
        self, batch: Sequence[Prepared], now: datetime, synced: Future[None], *, guarded: bool
    ) -> list[Outcome]:
        """One transaction for ``batch``. Guarded, each mail has a savepoint of its own, so
        that one that fails is suspended and the others still commit. Unguarded (first),
        a mail that fails takes the whole batch back (``_TakeBack``), to be done again
        guarded: the savepoints cost about a tenth of a commit's CPU (bench/README.md).
        Unguarded, the rows nothing reads back (audit events, outbox, notification log)
        are held to the end of the batch and written one statement per table, and the
        senders' send limits are counted once for the batch."""
        with self.db.write() as session:
            # Gateways given the same mail (a secondary MX) take turns here; without it
            # their batches would meet on the unique dedupe key, wait for each other, and
            # PostgreSQL would end one batch as a deadlock (451 for all of its mails).
            lock_in_order(session, (f"delivery:{p.dedupe_key}" for p in batch))
            reader = StoreReader(session)
            reader.look_ahead([self._delivery_of(prepared) for prepared in batch])
            if guarded:
                outcomes = [self._commit_one(session, reader, p, now) for p in batch]
            else:
                # Each new ticket's acknowledgement is checked against the send limits
                # of its sender: their counts are found for the whole batch at once.
                senders = (p.mail.from_address for p in batch if p.mail.from_address)
                counted = self.applier.notifier.counted_ahead(session, senders, now=now)
                with _taken_back_on_failure(), held_inserts(session), counted:
                    outcomes = [self._decide_and_apply(session, reader, p, now) for p in batch]
            synced.result()  # the files are on disk before the rows (raises StoreUnavailable)
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
        reading = prepared.reading or self.preparer.words.read(mail)
        instructions = instructions_for(reading, mail, sender)
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

    def _delivery_of(self, prepared: Prepared) -> Delivery:
        """What the batch's look-ahead asks for this mail. The references and tickets are
        only hints: a mail whose addresses they cannot be read from goes without them,
        and its own turn (in a savepoint, if need be) deals with it."""
        mail = prepared.mail
        basic = Delivery(prepared.dedupe_key, mail.message_id, mail.from_address)
        if not prepared.screened.is_ok or prepared.failure is not None:  # not threaded
            return basic
        try:
            named = named_tickets(mail, prepared.arrival.envelope.rcpt_tos, self.ours)
            return replace(basic, references=stored_references(mail), ticket_ids=tuple(named))
        except Exception:
            log.exception("mail %s: no look-ahead for its threading", prepared.raw.sha256)
            return basic

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


@contextmanager
def _taken_back_on_failure() -> Iterator[None]:
    """In the unguarded pass, a failure takes the whole batch back (``_TakeBack``), to be
    done again guarded; a store that is gone (``OperationalError``, a lost connection,
    ``StoreUnavailable``) fails the batch as it is."""
    try:
        yield
    except (OperationalError, StoreUnavailable):
        raise
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise
        raise _TakeBack from exc
    except Exception as exc:
        raise _TakeBack from exc


def _raw_of(prepared: Prepared) -> NewRaw:
    return new_raw(prepared.arrival, prepared.raw, prepared.mail.message_id, prepared.dedupe_key)


def _record_duplicate(session: Session, prepared: Prepared, original: int) -> Outcome:
    raw_id = record_raw(session, _raw_of(prepared), RawOutcome.DUPLICATE, duplicate_of=original)
    return Outcome("duplicate", raw_id, reason=f"same delivery as raw mail {original}")
