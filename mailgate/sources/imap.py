"""Stage 1 from an IMAP mailbox: one ``ImapPoller`` per ``[[imap]]`` section.

A round: connect (``imap_connection``), select the folder, check its UIDVALIDITY against
the store, then for each new mail by ascending UID — count the attempt, fetch, hand it to
``Pipeline.process`` (which commits), note the UID as committed — and only then move the
batch to the processed folder (MOVE, or COPY + ``\\Deleted`` + UID EXPUNGE).

Exactly once, from the order of operations:

- killed before the commit: the mail is still in the folder, above the last UID; it is
  fetched again next time, and its attempt count says how often that happened — after
  three crashes it is suspended (``processing_error``) instead of tried again;
- killed after the commit, before the bookkeeping: fetched again, the pipeline knows the
  delivery (same Message-ID, same content) and records a duplicate, not a second ticket;
- killed after the bookkeeping, before the move: the UID is at or below the last UID, so
  the mail is moved without running the pipeline again.

With several gateways on one store, each mailbox is polled by one of them at a time:
``run`` polls only while it holds the mailbox's lock (``store.locks``), and the others
try to take it every ``LOCK_RETRY_SECONDS`` — at once when the holder dies. The lock
saves work, it is not what keeps mail single: two pollers that met anyway would find
the second copy a duplicate, and the second move a mail already gone.

``StoreUnavailable`` leaves the mail where it is and ends the round; ``run`` retries it
after a backoff. Between rounds the poller waits in IDLE when the server offers it (new
mail is taken within seconds), else sleeps ``poll_interval``. Any failure only delays
this mailbox: ``run`` records it, backs off (capped, exponential) and reconnects.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientError

from mailgate.apply import Outcome
from mailgate.clock import Clock
from mailgate.config import ImapSettings
from mailgate.errors import MailgateError
from mailgate.pipeline import Pipeline
from mailgate.sources.imap_connection import close_quietly, explain, open_mailbox, require_folders
from mailgate.values import Arrival, Envelope, Source
from store.db import Database
from store.errors import StoreUnavailable
from store.locks import LockKeeper
from store.mailboxes import (
    MailboxPosition,
    count_attempt,
    mark_committed,
    open_position,
    record_error,
    record_poll,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # crashes on one mail before it is suspended (Mailman's MAX_BAK_COUNT)
IDLE_CHECK_SECONDS = 1.0  # how often an IDLE wait looks at the stop flag
IDLE_RENEW_SECONDS = 25 * 60  # RFC 2177: servers may drop an IDLE after 30 minutes
LOCK_RETRY_SECONDS = 5.0  # how soon a waiting gateway takes a mailbox whose poller died

Connect = Callable[[ImapSettings], IMAPClient]


def _nothing(uid: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class PollerHooks:
    """Called at the points where a crash must lose nothing (tests kill the poller there)."""

    after_fetch: Callable[[int], None] = _nothing  # fetched, not yet committed
    after_commit: Callable[[int], None] = _nothing  # committed, bookkeeping not yet written
    before_move: Callable[[int], None] = _nothing  # bookkeeping written, not yet moved


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential delays between reconnects, with jitter so that many pollers
    whose server came back do not all knock at the same second."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        exponent = min(max(failures - 1, 0), 30)
        ceiling: float = min(self.cap, self.base * 2.0**exponent)
        return ceiling * random.uniform(0.75, 1.0)


@dataclass(frozen=True, slots=True)
class RoundReport:
    """What one round did."""

    outcomes: tuple[Outcome, ...] = ()
    moved: int = 0
    more_waiting: bool = False  # the batch was full: start the next round at once


@dataclass
class _Line:
    """The open connection and what we learnt when opening it."""

    client: IMAPClient
    position: MailboxPosition
    can_move: bool
    can_uid_expunge: bool
    can_idle: bool


@dataclass
class ImapPoller:
    """Reads one mailbox into the pipeline; ``poll_once`` for one round, ``run`` forever."""

    settings: ImapSettings
    pipeline: Pipeline
    db: Database
    clock: Clock
    connect: Connect = open_mailbox
    use_move: bool | None = None  # None: MOVE when offered; False: COPY + EXPUNGE always
    hooks: PollerHooks = field(default_factory=PollerHooks)
    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int = MAX_ATTEMPTS
    locks: LockKeeper | None = None  # several gateways: poll only while holding the lock
    _line: _Line | None = field(default=None, init=False, repr=False)
    # UIDs whose last try ended with the store unavailable: that try was no crash, so
    # the next one does not count again.
    _not_crashed: set[int] = field(default_factory=set, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.settings.name

    # --- the loop ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; never raises (failures are recorded and retried)."""
        failures = 0
        try:
            while not stop.is_set():
                if not self._holds_mailbox():
                    self.disconnect()  # another gateway polls it
                    stop.wait(LOCK_RETRY_SECONDS)
                    continue
                try:
                    report = self.poll_once(stop)
                    failures = 0
                    if not report.more_waiting and not stop.is_set():
                        self._wait_for_mail(stop)
                except Exception as exc:  # one mailbox failing must not stop anything else
                    failures += 1
                    self.disconnect()
                    self._note_failure(exc)
                    stop.wait(self.backoff.delay(failures))
        finally:
            self.disconnect()
            if self.locks is not None:
                self.locks.release(self.lock_name)

    @property
    def lock_name(self) -> str:
        return f"imap:{self.settings.name}"

    def _holds_mailbox(self) -> bool:
        """True when this gateway may poll: no lock in use, or the lock is (now) ours."""
        if self.locks is None:
            return True
        return self.locks.holds(self.lock_name) or self.locks.try_acquire(self.lock_name)

    def disconnect(self) -> None:
        line, self._line = self._line, None
        if line is not None:
            close_quietly(line.client)

    # --- one round --------------------------------------------------------------------

    def poll_once(self, stop: threading.Event | None = None) -> RoundReport:
        """Take the waiting mails (up to ``batch_size``), then move what was committed.

        Raises what went wrong — ``MailboxError``, ``ConfigError``, ``StoreUnavailable``,
        an IMAP or socket error — leaving every mail not yet committed on the server.
        """
        line = self._line or self._open()
        last_uid = line.position.last_uid
        if last_uid > 0:  # committed in an earlier round, but not moved: move them now
            self._dispose(line, self._search(line.client, f"1:{last_uid}", "ALL"))
        # "n:*" always matches the highest UID, even below n: filter again.
        new = [
            u for u in self._search(line.client, f"{last_uid + 1}:*", "UNDELETED") if u > last_uid
        ]
        outcomes: list[Outcome] = []
        taken: list[int] = []
        handled = 0
        for uid in new[: self.settings.batch_size]:
            if stop is not None and stop.is_set():
                break
            outcome = self._take(line, uid)
            handled += 1
            if outcome is not None:
                outcomes.append(outcome)
                taken.append(uid)
        if taken:
            self.hooks.before_move(taken[-1])
        moved = self._dispose(line, taken)
        with self.db.write() as session:
            record_poll(session, self.name, self.clock())
        return RoundReport(tuple(outcomes), moved, more_waiting=len(new) > handled)

    def _open(self) -> _Line:
        client = self.connect(self.settings)
        try:
            require_folders(client, self.settings)
            selected = client.select_folder(self.settings.folder)
            uidvalidity = int(selected[b"UIDVALIDITY"])
            with self.db.write() as session:
                position = open_position(session, self.name, self.settings.folder, uidvalidity)
            line = _Line(
                client,
                position,
                can_move=client.has_capability("MOVE") if self.use_move is None else self.use_move,
                can_uid_expunge=client.has_capability("UIDPLUS"),
                can_idle=client.has_capability("IDLE"),
            )
        except BaseException:
            close_quietly(client)
            raise
        self._line = line
        return line

    def _search(self, client: IMAPClient, uids: str, flags: str) -> list[int]:
        return sorted(int(u) for u in client.search(["UID", uids, flags]))

    def _take(self, line: _Line, uid: int) -> Outcome | None:
        """Commit mail ``uid`` through the pipeline (or suspend it after repeated crashes);
        None when it vanished from the folder before it could be fetched."""
        uidvalidity = line.position.uidvalidity
        with self.db.write() as session:
            attempts = count_attempt(
                session,
                self.name,
                uidvalidity,
                uid,
                self.clock(),
                again=uid not in self._not_crashed,
            )
        self._not_crashed.discard(uid)
        raw = line.client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
        outcome = None
        try:
            if isinstance(raw, bytes):
                self.hooks.after_fetch(uid)
                outcome = self._commit(uid, raw, attempts)
                self.hooks.after_commit(uid)
            else:  # expunged by someone else meanwhile: nothing to take
                log.info("mailbox %s: mail %s vanished before it was fetched", self.name, uid)
            with self.db.write() as session:
                mark_committed(session, self.name, uidvalidity, uid)
        except StoreUnavailable:
            self._not_crashed.add(uid)  # an outage is not the mail's fault
            raise
        line.position = MailboxPosition(
            line.position.folder, uidvalidity, max(uid, line.position.last_uid)
        )
        return outcome

    def _commit(self, uid: int, raw: bytes, attempts: int) -> Outcome:
        arrival = Arrival(raw, Envelope(), Source("imap", mailbox=self.name), self.clock())
        if attempts > self.max_attempts:
            why = f"IMAP mail {uid} in {self.name} crashed {attempts - 1} tries"
            log.error("mailbox %s: %s; suspending it", self.name, why)
            outcome = self.pipeline.suspend_unprocessed(arrival, why)
        else:
            outcome = self.pipeline.process(arrival)
        ticket = f" #{outcome.ticket_id}" if outcome.ticket_id is not None else ""
        log.info("mailbox %s: mail %s: %s%s", self.name, uid, outcome.kind, ticket)
        return outcome

    def _dispose(self, line: _Line, uids: list[int]) -> int:
        """Move committed mails out of the folder; returns how many."""
        if not uids:
            return 0
        client, target = line.client, self.settings.processed_folder
        if line.can_move:
            client.move(uids, target)
            return len(uids)
        flagged = {int(u) for u in client.search(["UID", _uid_set(uids), "DELETED"])}
        fresh = [u for u in uids if u not in flagged]
        if fresh:  # a flagged one was copied before it was flagged: copy it only once
            client.copy(fresh, target)
            client.add_flags(fresh, [DELETED], silent=True)
        if line.can_uid_expunge:
            client.uid_expunge(uids)
        else:  # without UIDPLUS only the whole folder's \Deleted mails can be expunged
            client.expunge()
        return len(uids)

    # --- between rounds ---------------------------------------------------------------

    def _wait_for_mail(self, stop: threading.Event) -> None:
        line = self._line
        if line is None or not (self.settings.idle and line.can_idle):
            stop.wait(self.settings.poll_interval)
            return
        client = line.client
        client.idle()
        try:
            deadline = time.monotonic() + min(self.settings.poll_interval, IDLE_RENEW_SECONDS)
            while not stop.is_set() and time.monotonic() < deadline:
                if client.idle_check(timeout=IDLE_CHECK_SECONDS):
                    break  # EXISTS, EXPUNGE…: something changed, take a look
        finally:
            client.idle_done()

    def _note_failure(self, exc: Exception) -> None:
        if isinstance(exc, MailgateError | StoreUnavailable):
            text = str(exc)
            log.warning("%s; retrying", text)
        elif isinstance(exc, IMAPClientError | OSError):
            text = str(explain(self.settings, exc))
            log.warning("%s; retrying", text)
        else:  # a bug while handling a mail: it stays, and its attempts are counted
            text = f"mailbox {self.name}: handling a mail failed: {type(exc).__name__}: {exc}"
            log.exception("mailbox %s: round failed; retrying", self.name)
        try:
            with self.db.write() as session:
                record_error(session, self.name, text, self.clock())
        except StoreUnavailable:
            log.warning("mailbox %s: could not record the error: store unavailable", self.name)


def _uid_set(uids: list[int]) -> str:
    return ",".join(str(u) for u in uids)
