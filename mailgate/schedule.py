"""Stage 10, schedule: the periodic jobs, each run once per call of ``run_once``.

- auto-close: solved tickets close ``auto_close_days`` after they were solved;
- stand-by reminders: an on-hold ticket's merchant hears from us every
  ``standby_reminder_hours``, with the reason in words, even when nothing changed;
- SLA breach warnings: once per phase, to the assignee or else the sector's agents;
- outbox retries: the dispatcher's due mails (``outbox=False`` leaves them to ``serve``'s
  faster dispatch loop);
- the ticket counts of ``stats`` folded into one row per group (``store/counts.py``).

``mailgate schedule run`` (cron, or a test under ``faketime``) and ``serve``'s timer call
the same ``run_once``. Each ticket is handled in its own transaction after being claimed
(``store/due.py``), so runners may overlap without doing anything twice, and one broken
ticket does not stop the others (it is logged and tried again next time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from mailgate.clock import Clock
from mailgate.config import WorkflowSettings
from mailgate.notifications import Notifier
from mailgate.outbound.dispatcher import Dispatcher
from mailgate.workflow import Workflow
from store import counts, day_totals, due
from store.db import Database
from store.enums import Status
from store.errors import StoreUnavailable
from store.lifecycle import change_status
from store.models import Ticket
from store.sla import phase_of, settle
from store.tickets import audit

log = logging.getLogger(__name__)

ACTOR = "scheduler"


@dataclass(frozen=True, slots=True)
class ScheduleReport:
    closed: int = 0
    reminded: int = 0
    warned: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (
            f"auto-closed {self.closed}, stand-by reminders {self.reminded}, "
            f"SLA warnings {self.warned}; outbox: {self.sent} sent, "
            f"{self.retried} to retry, {self.failed} failed"
        )


@dataclass(frozen=True, slots=True)
class Scheduler:
    db: Database
    workflow: Workflow
    notifier: Notifier
    dispatcher: Dispatcher
    settings: WorkflowSettings
    clock: Clock

    def run_once(self, *, outbox: bool = True) -> ScheduleReport:
        """Run every job that is due now, once; returns what each did."""
        now = self.clock()
        closed = self._each(due.solved_before(now - self._auto_close_after), self._close, now)
        reminded = self._each(
            due.standby_reminder_due(now, self._reminder_every), self._remind, now
        )
        warned = self._each(due.breach_unwarned(now), self._warn, now)
        report = ScheduleReport(closed, reminded, warned)
        with self.db.write() as session:
            counts.compact(session)
            day_totals.compact(session)
        if outbox:
            sent = self.dispatcher.run_once()
            report = ScheduleReport(closed, reminded, warned, sent.sent, sent.retried, sent.failed)
        return report

    @property
    def _auto_close_after(self) -> timedelta:
        return timedelta(days=self.settings.auto_close_days)

    @property
    def _reminder_every(self) -> timedelta:
        return timedelta(hours=self.settings.standby_reminder_hours)

    # --- the jobs, one ticket each --------------------------------------------------
    def _close(self, session: Session, ticket: Ticket, now: datetime) -> None:
        change_status(session, ticket, Status.CLOSED, actor=ACTOR, now=now)
        settle(session, ticket, now, self.workflow.sla)

    def _remind(self, session: Session, ticket: Ticket, now: datetime) -> None:
        since = ticket.status_since or ticket.updated_at
        self.notifier.to_merchants(
            session,
            ticket,
            "standby_reminder",
            now=now,
            extra={
                "standby_reason": ticket.standby_reason or "",
                "standby_since": since.date().isoformat(),
                "deadline": ticket.deadline.isoformat() if ticket.deadline else "",
            },
        )
        ticket.standby_reminded_at = now
        session.add(ticket)
        audit(
            session,
            ticket.id,
            actor=ACTOR,
            action="reminder",
            now=now,
            detail=f"stand-by ({ticket.standby_reason}) since {since.isoformat()}",
        )

    def _warn(self, session: Session, ticket: Ticket, now: datetime) -> None:
        phase = phase_of(ticket)
        sent = self.workflow.notices.sla_breach(session, ticket, phase, now=now)
        ticket.sla_warned = phase.value
        session.add(ticket)
        audit(
            session,
            ticket.id,
            actor=ACTOR,
            action="sla_breach",
            now=now,
            field_name="due_at",
            new=ticket.due_at.isoformat() if ticket.due_at else None,
            detail=f"{phase.value} deadline passed; {sent} agent(s) warned",
        )

    def _each(
        self,
        condition: due.Condition,
        job: Callable[[Session, Ticket, datetime], None],
        now: datetime,
    ) -> int:
        with self.db.read() as session:
            ids = due.candidates(session, condition)
        done = 0
        for ticket_id in ids:
            try:
                with self.db.write() as session:
                    ticket = due.claim(session, ticket_id, condition)
                    if ticket is None:
                        continue  # another runner has it, or has done it
                    job(session, ticket, now)
                done += 1  # counted once committed
            except StoreUnavailable:
                raise
            except Exception:
                log.exception("%s: ticket #%s failed; will retry", job.__name__, ticket_id)
        return done
