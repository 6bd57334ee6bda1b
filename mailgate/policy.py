"""The ``[workflow]`` and ``[sla]`` settings turned into the store's ``SlaPolicy``.

Built once by the composition root (``app.py``); the SLA clock itself lives in
``store/sla.py``. Public holidays come from the ``holidays`` package for the configured
country (any year, computed on demand), plus the extra closed days an admin lists.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import holidays

from mailgate.config import (
    WEEKDAYS,
    SlaSettings,
    SlaTargets,
    WorkflowSettings,
    parse_duration,
    parse_working_hours,
)
from store.enums import Priority, TicketType
from store.sla import BusinessCalendar, Phase, SlaPolicy


@dataclass(frozen=True, slots=True)
class ClosedDays:
    """The country's public holidays and the admin's extra days, as one ``in`` test."""

    public: Container[date]
    extra: frozenset[date]

    def __contains__(self, day: object) -> bool:
        return day in self.extra or day in self.public


def business_calendar(workflow: WorkflowSettings) -> BusinessCalendar:
    opens, closes = parse_working_hours(workflow.working_hours)
    public: Container[date] = (
        holidays.country_holidays(workflow.country) if workflow.country else frozenset()
    )
    return BusinessCalendar(
        zone=ZoneInfo(workflow.timezone),
        workdays=frozenset(WEEKDAYS.index(d) for d in workflow.working_days),
        opens=opens,
        closes=closes,
        holidays=ClosedDays(public, frozenset(workflow.holidays)),
    )


def sla_policy(workflow: WorkflowSettings, sla: SlaSettings) -> SlaPolicy:
    by_type: dict[tuple[Phase, str, str], float] = {}
    for phase, targets in (
        (Phase.FIRST_RESPONSE, sla.first_response),
        (Phase.RESOLUTION, sla.resolution),
    ):
        for ticket_type in TicketType:
            special = getattr(targets, ticket_type.value)
            if special is None:
                continue
            for priority in Priority:
                value = getattr(special, priority.value)
                if value is not None:
                    by_type[(phase, ticket_type.value, priority.value)] = parse_duration(value)
    return SlaPolicy(
        calendar=business_calendar(workflow),
        first_response=_per_priority(sla.first_response),
        resolution=_per_priority(sla.resolution),
        by_type=by_type,
    )


def _per_priority(targets: SlaTargets) -> dict[str, float]:
    return {p.value: parse_duration(getattr(targets, p.value)) for p in Priority}
