"""The SLA clock: business calendars, targets, and each ticket's running deadline.

A ticket's clock runs while it is ``new`` or ``open``, pauses while ``pending`` or
``on_hold``, and stops once ``solved`` (a reopened ticket runs on from where it stopped).
``immediate`` tickets run on a 24/7 clock; the others count business time only (working
days and hours in the platform's time zone, minus public holidays), and in peak mode they
do not run at all. ``due_at`` is the next deadline: first response until an agent has
answered, then resolution.

The clock is kept incrementally on the ticket row (``sla_used_seconds`` spent so far,
``sla_clock`` and ``sla_since`` for the segment that is running). Whoever changes a
ticket's status, priority, type or first response calls ``settle`` once afterwards, in the
same transaction: it closes the running segment at ``now`` and starts the next one, so
calling it again changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from store.durations import record_durations
from store.enums import Priority, Status
from store.meta import get_value, set_value
from store.models import Ticket
from store.tickets import audit

PEAK_KEY = "peak_mode"
_MAX_DAYS = 3660  # a calendar with no working time for ten years is a configuration error


class ClockKind(StrEnum):
    """Which clock a ticket's SLA segment runs on."""

    BUSINESS = "business"
    ALWAYS = "always"
    PAUSED = "paused"


class Phase(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


RUNNING_STATUSES = frozenset({Status.NEW, Status.OPEN})
PAUSED_STATUSES = frozenset({Status.PENDING, Status.ON_HOLD})  # waiting for someone else
STOPPED_STATUSES = frozenset({Status.SOLVED, Status.CLOSED})


class Calendar(Protocol):
    def seconds_between(self, start: datetime, end: datetime) -> float: ...
    def shift(self, start: datetime, seconds: float) -> datetime: ...


@dataclass(frozen=True, slots=True)
class AlwaysOpen:
    """Wall-clock time, 24/7: the clock of ``immediate`` tickets."""

    def seconds_between(self, start: datetime, end: datetime) -> float:
        return max(0.0, (end - start).total_seconds())

    def shift(self, start: datetime, seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Working days and hours in one time zone, minus holidays.

    Hours are local wall-clock times, so a working day stays 09:00-17:00 across daylight
    saving changes. ``closes`` None means midnight at the end of the day.
    """

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    workdays: frozenset[int] = frozenset(range(5))  # Monday is 0
    opens: time = time(9)
    closes: time | None = time(17)
    holidays: Container[date] = frozenset()

    def __post_init__(self) -> None:
        if self.closes is not None and self.closes <= self.opens:
            raise ValueError("working hours must close after they open")
        if not self.workdays:
            raise ValueError("a business calendar needs at least one working day")

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.workdays and day not in self.holidays

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The working hours of ``day`` as UTC instants, or None on a day off."""
        if not self.is_working_day(day):
            return None
        start = datetime.combine(day, self.opens, tzinfo=self.zone)
        if self.closes is None:
            end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        else:
            end = datetime.combine(day, self.closes, tzinfo=self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Working seconds from ``start`` to ``end`` (0 when ``end`` is not later)."""
        if end <= start:
            return 0.0
        total = 0.0
        day = self.local_date(start)
        last = self.local_date(end)
        while day <= last:
            found = self.window(day)
            if found is not None:
                opens, closes = max(found[0], start), min(found[1], end)
                if closes > opens:
                    total += (closes - opens).total_seconds()
            day += timedelta(days=1)
        return total

    def shift(self, start: datetime, seconds: float) -> datetime:
        """The instant ``seconds`` of working time after ``start`` (before it if negative)."""
        if seconds >= 0:
            return self._forward(start, seconds)
        return self._backward(start, -seconds)

    def _forward(self, start: datetime, seconds: float) -> datetime:
        if seconds == 0:
            return start
        remaining = seconds
        day = self.local_date(start)
        for _ in range(_MAX_DAYS):
            found = self.window(day)
            if found is not None:
                opens = max(found[0], start)
                available = (found[1] - opens).total_seconds()
                if available > 0:
                    if remaining <= available:
                        return opens + timedelta(seconds=remaining)
                    remaining -= available
            day += timedelta(days=1)
        raise ValueError("the business calendar has no working time in the next ten years")

    def _backward(self, start: datetime, seconds: float) -> datetime:
        remaining = seconds
        day = self.local_date(start)
        for _ in range(_MAX_DAYS):
            found = self.window(day)
            if found is not None:
                closes = min(found[1], start)
                available = (closes - found[0]).total_seconds()
                if available > 0:
                    if remaining <= available:
                        return closes - timedelta(seconds=remaining)
                    remaining -= available
            day -= timedelta(days=1)
        raise ValueError("the business calendar has no working time in the last ten years")


Targets = Mapping[str, float]  # priority -> seconds


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Targets per phase and priority (seconds of clock time), optionally per ticket type."""

    calendar: BusinessCalendar
    first_response: Targets
    resolution: Targets
    by_type: Mapping[tuple[Phase, str, str], float] = field(default_factory=dict)
    always_on: frozenset[str] = frozenset({Priority.IMMEDIATE.value})

    def target(self, phase: Phase, priority: str, ticket_type: str) -> float:
        """Seconds allowed for ``phase``: the type's own target if set, else the priority's."""
        special = self.by_type.get((phase, ticket_type, priority))
        if special is not None:
            return special
        targets = self.first_response if phase is Phase.FIRST_RESPONSE else self.resolution
        return targets[priority]

    def clock_for(self, status: Status, priority: str, *, peak: bool) -> ClockKind:
        """The clock a ticket in ``status`` with ``priority`` runs on now."""
        if status not in RUNNING_STATUSES:
            return ClockKind.PAUSED
        if priority in self.always_on:
            return ClockKind.ALWAYS
        # Peak mode (a sales campaign): only the tickets that block selling keep a clock.
        return ClockKind.PAUSED if peak else ClockKind.BUSINESS

    def calendar_of(self, kind: ClockKind) -> Calendar:
        return AlwaysOpen() if kind is ClockKind.ALWAYS else self.calendar


def phase_of(ticket: Ticket) -> Phase:
    """First response until an agent has answered, then resolution."""
    return Phase.FIRST_RESPONSE if ticket.first_response_at is None else Phase.RESOLUTION


def settle_ticket(ticket: Ticket, now: datetime, policy: SlaPolicy, *, peak: bool) -> None:
    """Close the running SLA segment at ``now``, record milestones, start the next one."""
    record_durations(ticket, policy.calendar)  # for stats: wall-clock and business time
    kind = ClockKind(ticket.sla_clock)
    if kind is not ClockKind.PAUSED and ticket.sla_since is not None:
        spent = policy.calendar_of(kind).seconds_between(ticket.sla_since, now)
        ticket.sla_used_seconds = (ticket.sla_used_seconds or 0.0) + spent
    used = ticket.sla_used_seconds or 0.0
    status = Status(ticket.status)
    if ticket.first_response_at is not None and ticket.sla_first_response_seconds is None:
        ticket.sla_first_response_seconds = used
    if status in STOPPED_STATUSES:
        if ticket.sla_resolution_seconds is None:
            ticket.sla_resolution_seconds = used
    else:
        ticket.sla_resolution_seconds = None  # reopened: measured again at the next solve
    kind = policy.clock_for(status, ticket.priority, peak=peak)
    ticket.sla_clock = kind.value
    if kind is ClockKind.PAUSED:
        ticket.sla_since = None
        ticket.due_at = None
        return
    ticket.sla_since = now
    target = policy.target(phase_of(ticket), ticket.priority, ticket.type)
    due = policy.calendar_of(kind).shift(now, target - used)
    # Whole seconds: a deadline is shown to the minute, and re-settling must not drift it.
    ticket.due_at = due.replace(microsecond=0) + timedelta(seconds=1 if due.microsecond else 0)


def settle(session: Session, ticket: Ticket, now: datetime, policy: SlaPolicy) -> None:
    """``settle_ticket`` with the store's peak-mode switch; the caller commits."""
    settle_ticket(ticket, now, policy, peak=peak_mode(session))
    session.add(ticket)


def is_met(seconds: float | None, target: float) -> bool | None:
    """Whether a measured phase met its target; None while it is not measured yet."""
    if seconds is None:
        return None
    return math.floor(seconds) <= target


# --- peak mode -------------------------------------------------------------------------


def peak_mode(session: Session) -> bool:
    return get_value(session, PEAK_KEY) == "on"


def set_peak_mode(
    session: Session, on: bool, *, actor: str, now: datetime, policy: SlaPolicy
) -> int:
    """Switch peak mode; every unfinished ticket's clock is settled under the new rule.

    Returns the number of tickets settled. The rows are locked (``FOR UPDATE``) so a ticket
    changed at the same moment by someone else is settled after them, not over them.
    """
    set_value(session, PEAK_KEY, "on" if on else "off")
    audit(session, None, actor=actor, action="peak", now=now, new="on" if on else "off")
    tickets = session.exec(
        select(Ticket)
        .where(col(Ticket.status).not_in([s.value for s in STOPPED_STATUSES]))
        .order_by(col(Ticket.id))
        .with_for_update()
    ).all()
    for ticket in tickets:
        settle_ticket(ticket, now, policy, peak=on)
        session.add(ticket)
    return len(tickets)
