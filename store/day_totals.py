"""Per-day figures of the tickets, kept as the store changes (revision 0005), so ``stats``
reads a reporting period's whole days from a few thousand rows.

- ``ticket_day_totals``: per UTC day of creation, priority, type and sector, the number of
  tickets (not merged away), count and sum of each stored duration, and per SLA phase how
  many are measured and how many of those met the target of ``sla_limits``;
- ``duration_days``: per kind of duration and day, how many values fall in each range of
  ``duration_buckets`` (read by ``store/medians.py``).

Like ``store/counts.py``: triggers add rows of changes in the writer's transaction, the
readers sum them, and ``compact`` (run by the scheduler) folds them into one row per group.

The verdicts depend on the configured targets, which the database cannot know: they are
written to ``sla_limits`` by ``sync_limits`` (``mailgate db upgrade`` and ``serve`` at
start), which counts the verdicts again when the targets changed. ``stats`` reads the
verdicts from here only when the store's limits are the targets it is given
(``limits_match``); otherwise it counts them over the period's tickets.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy import case, func
from sqlmodel import Session, col

from store.counts import fold_rows, mark_folded, try_lock
from store.models import DURATIONS, DurationDay, SlaLimit, Ticket, TicketDayTotal
from store.sla import Phase, SlaPolicy

# The figures of a group, in the order of ``ticket_day_totals``' columns.
FIGURES = (
    "tickets",
    "fw_n",
    "fw_sum",
    "fb_n",
    "fb_sum",
    "rw_n",
    "rw_sum",
    "rb_n",
    "rb_sum",
    "first_measured",
    "first_met",
    "done_measured",
    "done_met",
)
GROUP = ("priority", "type", "sector")
_LOCK_ID = 0x736C6173  # "slas": one rewrite of the limits at a time (PostgreSQL)
_COMPACT_LOCK_ID = 0x64617973  # "days": one compaction at a time (PostgreSQL)

Limits = set[tuple[str, str, str, float]]  # phase, priority, type ("" for any), below


def limits_for(policy: SlaPolicy) -> Limits:
    """The rows of ``sla_limits`` for ``policy``: a phase is met when its SLA seconds are
    under the target's whole seconds plus one (``is_met``: ``floor(s) <= target``)."""
    rows = {
        (phase.value, priority, "", float(math.floor(seconds) + 1))
        for phase, targets in (
            (Phase.FIRST_RESPONSE, policy.first_response),
            (Phase.RESOLUTION, policy.resolution),
        )
        for priority, seconds in targets.items()
    }
    rows |= {
        (phase.value, priority, kind, float(math.floor(seconds) + 1))
        for (phase, kind, priority), seconds in policy.by_type.items()
    }
    return rows


def stored_limits(session: Session) -> Limits:
    return {
        (phase, priority, kind, float(below))
        for phase, priority, kind, below in session.execute(
            sa.select(
                col(SlaLimit.phase), col(SlaLimit.priority), col(SlaLimit.type), col(SlaLimit.below)
            )
        ).all()
    }


def limits_match(session: Session, policy: SlaPolicy) -> bool:
    """Whether the verdicts kept here were judged against ``policy``'s targets."""
    return stored_limits(session) == limits_for(policy)


def sync_limits(session: Session, policy: SlaPolicy) -> bool:
    """Make ``policy``'s targets the store's limits; when they change, count every day's
    verdicts again (one pass over the tickets). Returns whether they changed. Writers
    wait meanwhile (PostgreSQL: the tickets are locked against changes, so no trigger
    adds a row judged by the old limits)."""
    wanted = limits_for(policy)
    if stored_limits(session) == wanted:
        return False
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        session.execute(sa.text("LOCK TABLE tickets IN SHARE ROW EXCLUSIVE MODE"))
        if stored_limits(session) == wanted:
            return False  # another process wrote them while this one waited
    session.execute(sa.delete(SlaLimit))
    session.execute(
        sa.insert(SlaLimit),
        [
            {"phase": phase, "priority": priority, "type": kind, "below": below}
            for phase, priority, kind, below in sorted(wanted)
        ],
    )
    _recount_verdicts(session, policy)
    return True


def below_limit(policy: SlaPolicy, phase: Phase) -> Any:
    """``limits_for`` as SQL: per ticket row, the first SLA seconds value of ``phase``
    that misses its target, None where the ticket has none (a type's own target first)."""
    priority, kind = col(Ticket.priority), col(Ticket.type)
    rows = sorted(row for row in limits_for(policy) if row[0] == phase.value)
    whens: list[tuple[Any, float]] = [
        (sa.and_(priority == p, kind == t), below) for _, p, t, below in rows if t
    ]
    whens += [(priority == p, below) for _, p, t, below in rows if not t]
    return case(*whens, else_=None)


def figures(policy: SlaPolicy) -> dict[str, Any]:
    """``FIGURES`` as aggregates over ticket rows, verdicts judged by ``policy``: what a
    row of ``ticket_day_totals`` sums up (the triggers of revision 0005 keep the same per
    ticket), and what ``stats`` counts over the tickets where the totals cannot serve."""
    first, done = col(Ticket.sla_first_response_seconds), col(Ticket.sla_resolution_seconds)
    found: dict[str, Any] = {"tickets": func.count()}
    for measure, name in DURATIONS.items():
        column = getattr(Ticket, name)
        found[f"{measure}_n"] = func.count(column)
        found[f"{measure}_sum"] = func.coalesce(func.sum(column), 0.0)
    found["first_measured"] = func.count(first)
    found["first_met"] = func.count().filter(first < below_limit(policy, Phase.FIRST_RESPONSE))
    found["done_measured"] = func.count(done)
    found["done_met"] = func.count().filter(done < below_limit(policy, Phase.RESOLUTION))
    assert tuple(found) == FIGURES
    return found


def _recount_verdicts(session: Session, policy: SlaPolicy) -> None:
    """Replace the per-day totals by ones counted from the tickets (what the triggers
    would have written had the limits always been these)."""
    table = TicketDayTotal.__table__  # type: ignore[attr-defined]
    day = _day_of_creation(session)
    groups = [day, col(Ticket.priority), col(Ticket.type), col(Ticket.sector)]
    session.execute(sa.delete(table))
    session.execute(
        sa.insert(table).from_select(
            ["day", *GROUP, *FIGURES],
            sa.select(*groups, *figures(policy).values())
            .where(col(Ticket.merged_into).is_(None))
            .group_by(*groups),
        )
    )
    mark_folded(session, table)  # one row per group: nothing for the next fold to do


def _day_of_creation(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(col(Ticket.created_at), sa.Date)
    return func.date(col(Ticket.created_at))


def totals_from(session: Session, first_day: date | None) -> list[dict[str, Any]]:
    """The figures of the tickets created on ``first_day`` or later (None: ever), per
    priority, type and sector, as ``FIGURES`` keyed dicts."""
    query = sa.select(
        col(TicketDayTotal.priority),
        col(TicketDayTotal.type),
        col(TicketDayTotal.sector),
        *(getattr(TicketDayTotal, name) for name in FIGURES),
    )
    if first_day is not None:
        query = query.where(col(TicketDayTotal.day) >= first_day)
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for row in session.execute(query):
        into = sums.setdefault(tuple(row[:3]), [0] * len(FIGURES))
        for n, value in enumerate(row[3:]):
            into[n] += value
    return [
        {**dict(zip(GROUP, group, strict=True)), **dict(zip(FIGURES, values, strict=True))}
        for group, values in sums.items()
        if values[0]
    ]


def histogram_from(
    session: Session, first_day: date | None, measures: list[str]
) -> dict[str, Counter[float]]:
    """Per measure, how many of its values of the tickets created on ``first_day`` or
    later (None: ever) lie in the range starting at each bound."""
    query = sa.select(
        col(DurationDay.measure), col(DurationDay.low), func.sum(col(DurationDay.n))
    ).where(col(DurationDay.measure).in_(measures))
    if first_day is not None:
        query = query.where(col(DurationDay.day) >= first_day)
    found: dict[str, Counter[float]] = {m: Counter() for m in measures}
    for measure, low, n in session.execute(
        query.group_by(col(DurationDay.measure), col(DurationDay.low))
    ):
        if n:
            found[measure][float(low)] += int(n)
    return found


def compact(session: Session) -> int:
    """Fold the rows of both tables into one per group; returns how many rows fewer
    (0 on PostgreSQL while another compaction runs)."""
    if not try_lock(session, _COMPACT_LOCK_ID):
        return 0
    totals = TicketDayTotal.__table__  # type: ignore[attr-defined]
    ranges = DurationDay.__table__  # type: ignore[attr-defined]
    return fold_rows(session, totals, ["day", *GROUP], list(FIGURES)) + fold_rows(
        session, ranges, ["measure", "day", "low"], ["n"]
    )
