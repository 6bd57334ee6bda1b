"""Stage 10's clock (``store/sla.py``): business calendars, holidays of the five countries,
daylight saving, weekends, pauses, peak mode, and per-type targets. Time is moved with
``ManualClock``; the calendars are built from settings the way ``app.py`` builds them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from mailgate.clock import ManualClock
from mailgate.config import SlaSettings, WorkflowSettings, parse_duration
from mailgate.policy import business_calendar, sla_policy
from store.enums import Status
from store.models import Ticket
from store.sla import AlwaysOpen, BusinessCalendar, ClockKind, SlaPolicy, settle_ticket

UTC_CAL = BusinessCalendar()  # Mon-Fri 09:00-17:00 UTC, no holidays
MON = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
HOUR = 3600.0


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in the week of 2026-11-23 (Monday) in UTC: ``at(27, 16)`` is Friday 16:00."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def policy(**workflow: object) -> SlaPolicy:
    return sla_policy(WorkflowSettings(**workflow), SlaSettings())  # type: ignore[arg-type]


def new_ticket(created: datetime, *, priority: str = "normal", type_: str = "question") -> Ticket:
    return Ticket(
        requester="ana@shop.example",
        status=Status.NEW.value,
        priority=priority,
        type=type_,
        created_at=created,
        updated_at=created,
    )


def move(ticket: Ticket, status: Status, clock: ManualClock, sla: SlaPolicy) -> None:
    ticket.status = status.value
    settle_ticket(ticket, clock(), sla, peak=False)


# --- the business calendar ------------------------------------------------------------


def test_working_time_skips_nights_and_the_weekend() -> None:
    assert UTC_CAL.seconds_between(at(27, 16), at(30, 10)) == 2 * HOUR  # Fri 16 -> Mon 10
    assert UTC_CAL.seconds_between(at(23, 8), at(23, 18)) == 8 * HOUR
    assert UTC_CAL.seconds_between(at(28, 10), at(29, 15)) == 0  # the weekend
    assert UTC_CAL.seconds_between(at(24, 12), at(24, 11)) == 0  # backwards: nothing


def test_deadlines_move_over_nights_and_weekends_both_ways() -> None:
    assert UTC_CAL.shift(at(27, 16), 8 * HOUR) == at(30, 16)  # Fri 1 h + Mon 7 h
    assert UTC_CAL.shift(at(28, 12), HOUR) == at(30, 10)  # Saturday: the clock waits
    assert UTC_CAL.shift(at(23, 7), HOUR) == at(23, 10)  # before opening
    assert UTC_CAL.shift(at(23, 17), 0) == at(23, 17)
    assert UTC_CAL.shift(at(30, 10), -2 * HOUR) == at(27, 16)  # overdue: back over the weekend


def test_working_days_and_hours_come_from_the_settings() -> None:
    calendar = business_calendar(
        WorkflowSettings(
            working_days=("mon", "tue", "wed", "thu", "fri", "sat"), working_hours="08:30-12:00"
        )
    )
    assert calendar.seconds_between(at(28, 0), at(29, 0)) == 3.5 * HOUR  # Saturday works
    assert calendar.shift(at(23, 11, 30), HOUR) == at(24, 9)


@pytest.mark.parametrize(
    ("country", "zone", "created", "holiday", "due_local"),
    [
        # created the working day before the national holiday at 16:00 local: 1 h that
        # day, none on the holiday, 7 h the day after.
        (
            "RO",
            "Europe/Bucharest",
            datetime(2026, 5, 29, 16),
            date(2026, 6, 1),
            datetime(2026, 6, 2, 16),
        ),  # Rusalii (Whit Monday), after a weekend
        (
            "NL",
            "Europe/Amsterdam",
            datetime(2026, 4, 24, 16),
            date(2026, 4, 27),
            datetime(2026, 4, 28, 16),
        ),  # Koningsdag, after a weekend
        (
            "PT",
            "Europe/Lisbon",
            datetime(2026, 6, 9, 16),
            date(2026, 6, 10),
            datetime(2026, 6, 11, 16),
        ),  # Dia de Portugal
        (
            "BR",
            "America/Sao_Paulo",
            datetime(2026, 9, 4, 16),
            date(2026, 9, 7),
            datetime(2026, 9, 8, 16),
        ),  # Independência, after a weekend
        (
            "PL",
            "Europe/Warsaw",
            datetime(2026, 11, 10, 16),
            date(2026, 11, 11),
            datetime(2026, 11, 12, 16),
        ),  # Narodowe Święto Niepodległości
    ],
)
def test_public_holidays_of_each_country_pause_the_clock(
    country: str, zone: str, created: datetime, holiday: date, due_local: datetime
) -> None:
    assert holiday in holidays.country_holidays(country)
    tz = ZoneInfo(zone)
    sla = policy(country=country, timezone=zone)
    ticket = new_ticket(created.replace(tzinfo=tz).astimezone(UTC))
    settle_ticket(ticket, ticket.created_at, sla, peak=False)
    assert ticket.due_at == due_local.replace(tzinfo=tz).astimezone(UTC)
    # The same ticket without the country's holidays is due a day earlier.
    plain = policy(timezone=zone)
    settle_ticket(other := new_ticket(ticket.created_at), other.created_at, plain, peak=False)
    assert other.due_at is not None and ticket.due_at - other.due_at == timedelta(days=1)


def test_extra_closed_days_are_holidays_too() -> None:
    sla = policy(holidays=(date(2026, 11, 24),))
    ticket = new_ticket(at(23, 16))
    settle_ticket(ticket, ticket.created_at, sla, peak=False)
    assert ticket.due_at == at(25, 16)


def test_working_hours_are_local_across_the_autumn_clock_change() -> None:
    """Bucharest leaves summer time on Sunday 2026-10-25: 09:00-17:00 stays local."""
    tz = ZoneInfo("Europe/Bucharest")
    sla = policy(timezone="Europe/Bucharest")
    created = datetime(2026, 10, 23, 16, tzinfo=tz)  # Friday 16:00 EEST = 13:00 UTC
    ticket = new_ticket(created.astimezone(UTC))
    settle_ticket(ticket, ticket.created_at, sla, peak=False)
    assert ticket.due_at == datetime(2026, 10, 26, 16, tzinfo=tz)  # Monday 16:00 EET
    assert ticket.due_at == datetime(2026, 10, 26, 14, tzinfo=UTC)
    assert ticket.due_at - ticket.created_at == timedelta(hours=73)  # the extra hour


def test_working_hours_are_local_across_the_spring_clock_change() -> None:
    tz = ZoneInfo("Europe/Warsaw")
    sla = policy(timezone="Europe/Warsaw")
    ticket = new_ticket(datetime(2026, 3, 27, 16, tzinfo=tz).astimezone(UTC))
    settle_ticket(ticket, ticket.created_at, sla, peak=False)
    assert ticket.due_at == datetime(2026, 3, 30, 16, tzinfo=tz)
    assert ticket.due_at - ticket.created_at == timedelta(hours=71)  # one hour less


def test_a_round_the_clock_calendar_counts_the_25_hour_day() -> None:
    calendar = business_calendar(
        WorkflowSettings(
            timezone="Europe/Lisbon",
            working_days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
            working_hours="00:00-24:00",
        )
    )
    tz = ZoneInfo("Europe/Lisbon")
    saturday = datetime(2026, 10, 24, tzinfo=tz)
    monday = datetime(2026, 10, 26, tzinfo=tz)
    assert calendar.seconds_between(saturday, monday) == 49 * HOUR


def test_immediate_runs_24_7_through_weekends_and_holidays() -> None:
    sla = policy(country="RO", timezone="Europe/Bucharest")
    saturday_night = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    ticket = new_ticket(saturday_night, priority="immediate")
    settle_ticket(ticket, saturday_night, sla, peak=False)
    assert ticket.sla_clock == ClockKind.ALWAYS
    assert ticket.due_at == saturday_night + timedelta(hours=1)
    assert AlwaysOpen().seconds_between(saturday_night, ticket.due_at) == HOUR


# --- the clock of one ticket ------------------------------------------------------------


def test_the_clock_pauses_while_pending_and_switches_to_resolution_after_the_answer() -> None:
    sla = policy()
    clock = ManualClock(MON)
    ticket = new_ticket(clock())
    settle_ticket(ticket, clock(), sla, peak=False)
    assert ticket.due_at == at(23, 17)  # first response: 8 business hours

    clock.advance(hours=2)
    move(ticket, Status.PENDING, clock, sla)
    assert (ticket.due_at, ticket.sla_used_seconds) == (None, 2 * HOUR)

    clock.now = at(24, 9)  # the merchant answers the next morning: the clock runs on
    move(ticket, Status.OPEN, clock, sla)
    assert ticket.due_at == at(24, 15)  # 6 hours left

    clock.advance(hours=1)
    ticket.first_response_at = clock()
    settle_ticket(ticket, clock(), sla, peak=False)
    assert ticket.sla_first_response_seconds == 3 * HOUR
    # resolution: 40 h in all, 3 used; 37 h from Tuesday 10:00
    assert ticket.due_at == at(30, 15)

    clock.advance(hours=5)
    move(ticket, Status.SOLVED, clock, sla)
    assert ticket.sla_resolution_seconds == 8 * HOUR and ticket.due_at is None
    clock.advance(hours=1)
    move(ticket, Status.OPEN, clock, sla)  # reopened: measured again at the next solve
    assert ticket.sla_resolution_seconds is None
    assert ticket.due_at == at(30, 16)  # the solved hour did not count


def test_settling_twice_changes_nothing() -> None:
    sla = policy()
    ticket = new_ticket(at(23, 10, 17))
    settle_ticket(ticket, ticket.created_at, sla, peak=False)
    first = (ticket.due_at, ticket.sla_used_seconds)
    for minutes in (7, 13, 59):
        settle_ticket(ticket, ticket.created_at + timedelta(minutes=minutes), sla, peak=False)
    assert ticket.due_at == first[0]
    assert ticket.sla_used_seconds == pytest.approx(59 * 60)


def test_raising_the_priority_to_immediate_switches_to_the_24_7_clock() -> None:
    sla = policy()
    ticket = new_ticket(at(27, 16))  # Friday 16:00, normal
    settle_ticket(ticket, ticket.created_at, sla, peak=False)
    ticket.priority = "immediate"
    settle_ticket(ticket, at(27, 16, 30), sla, peak=False)  # 30 business minutes used
    assert ticket.sla_clock == ClockKind.ALWAYS
    assert ticket.due_at == at(27, 17)  # 1 h target, 30 min left, on the wall clock


def test_peak_mode_stops_every_clock_but_immediate() -> None:
    sla = policy()
    normal, urgent = new_ticket(MON), new_ticket(MON, priority="immediate")
    for ticket in (normal, urgent):
        settle_ticket(ticket, MON, sla, peak=True)
    assert (normal.sla_clock, normal.due_at) == (ClockKind.PAUSED, None)
    assert urgent.due_at == MON + timedelta(hours=1)
    settle_ticket(normal, MON + timedelta(hours=3), sla, peak=False)  # the campaign ends
    assert normal.due_at == at(24, 12)  # 8 h from noon: the 3 peak hours did not count


def test_per_type_targets_override_the_priority_target() -> None:
    sla = sla_policy(
        WorkflowSettings(),
        SlaSettings(first_response={"development": {"normal": "16h"}}),  # type: ignore[arg-type]
    )
    question, request = new_ticket(MON), new_ticket(MON, type_="development")
    for ticket in (question, request):
        settle_ticket(ticket, MON, sla, peak=False)
    assert question.due_at == at(23, 17)
    assert request.due_at == at(24, 17)


def test_a_breached_deadline_lies_in_the_past() -> None:
    sla = policy()
    ticket = new_ticket(MON, priority="high")  # 4 h
    settle_ticket(ticket, MON, sla, peak=False)
    settle_ticket(ticket, at(24, 11), sla, peak=False)  # 10 business hours later
    assert ticket.due_at == at(23, 13)


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h", 3600), ("30m", 1800), ("2h30m", 9000), ("1.5h", 5400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "values",
    [
        {"country": "XX"},
        {"timezone": "Mars/Olympus"},
        {"working_hours": "17:00-09:00"},
        {"working_hours": "9-5"},
        {"working_days": ("mon", "funday")},
        {"standby_reminder_hours": 0},
    ],
)
def test_bad_calendar_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"."):
        WorkflowSettings(**values)  # type: ignore[arg-type]


def test_bad_sla_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="bad duration"):
        SlaSettings(resolution={"normal": "two days"})  # type: ignore[arg-type]


def test_two_romanian_holidays_in_a_row_after_a_weekend() -> None:
    """Sfântul Andrei (30 November) and Ziua Națională (1 December) on Monday and Tuesday."""
    tz = ZoneInfo("Europe/Bucharest")
    sla = policy(country="RO", timezone="Europe/Bucharest")
    ticket = new_ticket(datetime(2026, 11, 27, 16, tzinfo=tz).astimezone(UTC))
    settle_ticket(ticket, ticket.created_at, sla, peak=False)
    assert ticket.due_at == datetime(2026, 12, 2, 16, tzinfo=tz)
