"""Stage 9 (notify): send what the outbox holds, with retries and backoff.

``Dispatcher.run_once`` claims due outbox rows, hands each to the transport and records
the outcome: sent; a temporary failure is retried after ``base * 2**(attempts-1)``
seconds (capped, plus up to 10 % jitter so that a relay coming back is not hit by every
dispatcher at the same second) until ``max_attempts``, then ``failed``; a permanent
failure is ``failed`` at once. ``serve`` calls it on a timer, tests call it directly.

A mail counts as sent once the transport's ``flush`` has returned after it (a maildir's
files are synced then, a chunk at a time). Delivery is at-least-once: if the process
dies (or the store fails) between the relay's "250" and the row being marked sent, the
row's lease runs out and the mail is sent again, with the same bytes and the same
Message-ID, so clients show it once. Losing a notification would be worse than a
duplicate. The rows of a claimed chunk (at most ``CLAIM_CHUNK``) are marked sent
together, in one transaction: under a burst of incoming mail each write waits for its
turn behind the committer, and one wait per mail held the dispatcher to a few mails a
second. That transaction is the one that claims the next chunk, so a chunk costs one
turn. The crash window is up to one chunk; a chunk whose relay is slow is marked early,
once half its lease is gone.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from mailgate.config import OutboundSettings
from mailgate.errors import TransportError
from mailgate.outbound.transports import Transport
from store import outbox
from store.db import Database
from store.models import OutboxMail

log = logging.getLogger(__name__)

CLAIM_CHUNK = 10  # rows claimed at a time: small, so that each lease is short to honour
JITTER = 0.1
_MAX_EXPONENT = 30  # beyond this the cap applies anyway; keeps 2**n a small number

Outcome = Literal["sent", "retried", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """What one round did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    # The round stopped at its limit: more mails may be due (``serve`` goes on at once).
    more: bool = field(default=False, compare=False)


class Dispatcher:
    """Sends due outbox mails through one transport."""

    def __init__(
        self,
        db: Database,
        transport: Transport,
        clock: Callable[[], datetime],
        settings: OutboundSettings,
        *,
        lease_seconds: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._transport = transport
        self._clock = clock
        self._settings = settings
        self._lease = lease_seconds
        self._mark_margin = timedelta(seconds=lease_seconds / 2)
        self._rng = rng or random.Random()

    def run_once(self, limit: int = 100) -> DispatchReport:
        """Send up to ``limit`` due mails; returns the counts.

        Never raises for a transport problem (that is what retries are for);
        ``StoreUnavailable`` propagates, and the rows claimed so far are taken again
        once their lease runs out.
        """
        counts: dict[Outcome, int] = {"sent": 0, "retried": 0, "failed": 0, "skipped": 0}
        claimed = 0
        flushed: list[int] = []  # sent and durable, recorded with the next claim
        with self._round():
            while claimed < limit:
                batch = outbox.claim_due(
                    self._db,
                    self._clock(),
                    min(CLAIM_CHUNK, limit - claimed),
                    self._lease,
                    sent=flushed,
                )
                counts["sent"] += len(flushed)
                flushed = []
                if not batch:
                    break
                claimed += len(batch)
                sent: list[OutboxMail] = []
                for mail in batch:
                    if sent and self._clock() >= mail.next_attempt_at - self._mark_margin:
                        # Half the lease is gone (a slow relay): record what went out
                        # before another dispatcher may take those mails again.
                        self._record_sent(self._flushed(sent, counts), counts)
                        sent = []
                    outcome = self._deliver(mail)
                    if outcome == "sent":
                        sent.append(mail)
                    else:
                        counts[outcome] += 1
                flushed = self._flushed(sent, counts)
            self._record_sent(flushed, counts)
        return DispatchReport(
            sent=counts["sent"],
            retried=counts["retried"],
            failed=counts["failed"],
            more=claimed >= limit,
        )

    def backoff(self, attempts: int) -> timedelta:
        """The wait before the next try, after ``attempts`` failed ones."""
        exponent = min(max(attempts - 1, 0), _MAX_EXPONENT)
        delay = self._settings.retry_base_seconds * 2**exponent
        delay = min(delay, self._settings.retry_max_seconds)
        return timedelta(seconds=delay * (1 + JITTER * self._rng.random()))

    @contextmanager
    def _round(self) -> Iterator[None]:
        # A transport that is a context manager (SMTP) keeps one connection for the round.
        if isinstance(self._transport, AbstractContextManager):
            with self._transport:
                yield
        else:
            yield

    def _deliver(self, mail: OutboxMail) -> Outcome:
        assert mail.id is not None
        if self._clock() >= mail.next_attempt_at:
            # Our lease ran out while earlier mails were sent: another dispatcher may have
            # claimed this one by now, and sending it here as well would duplicate it.
            log.warning("outbox %s: lease ran out before sending; left for the next round", mail.id)
            return "skipped"
        try:
            self._transport.send(mail.mail_from, outbox.recipients_of(mail), mail.raw)
        except TransportError as exc:
            return self._after_failure(mail, str(exc), permanent=exc.permanent)
        except Exception as exc:
            # A bug in a transport must cost one attempt, not the whole round.
            log.exception("outbox %s: transport crashed", mail.id)
            return self._after_failure(mail, f"{type(exc).__name__}: {exc}", permanent=False)
        log.info("outbox %s: sent %s for ticket #%s", mail.id, mail.kind, mail.ticket_id)
        return "sent"  # recorded by run_once, with the rest of its chunk

    def _flushed(self, sent: list[OutboxMail], counts: dict[Outcome, int]) -> list[int]:
        """The ids of ``sent`` once the transport has made them durable (a maildir's files
        are synced together); if it cannot, each of them is tried again later."""
        if not sent:
            return []
        try:
            self._transport.flush()
        except Exception as exc:
            if isinstance(exc, TransportError):
                error = str(exc)
            else:  # a bug in a transport, as in ``_deliver``
                log.exception("outbox: transport crashed while flushing")
                error = f"{type(exc).__name__}: {exc}"
            for mail in sent:
                counts[self._after_failure(mail, error, permanent=False)] += 1
            return []
        return [mail.id for mail in sent if mail.id is not None]

    def _record_sent(self, ids: list[int], counts: dict[Outcome, int]) -> None:
        outbox.mark_all_sent(self._db, ids, self._clock())
        counts["sent"] += len(ids)

    def _after_failure(self, mail: OutboxMail, error: str, *, permanent: bool) -> Outcome:
        assert mail.id is not None
        now = self._clock()
        if permanent:
            log.error("outbox %s: permanent failure, not retried: %s", mail.id, error)
            outbox.mark_failed(self._db, mail.id, error, now)
            return "failed"
        if mail.attempts >= self._settings.max_attempts:
            log.error("outbox %s: giving up after %s attempts: %s", mail.id, mail.attempts, error)
            outbox.mark_failed(
                self._db, mail.id, f"{error} (gave up after {mail.attempts} attempts)", now
            )
            return "failed"
        next_try = now + self.backoff(mail.attempts)
        log.warning(
            "outbox %s: attempt %s failed, next at %s: %s", mail.id, mail.attempts, next_try, error
        )
        outbox.mark_retry(self._db, mail.id, error, now, next_try)
        return "retried"
