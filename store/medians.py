"""Exact medians of a reporting period's durations, without sorting the period.

A median is the middle one or two values in order. Sorting every value of a period costs
far more than finding them (at a million tickets, ~114,000 values a month), so
``period_medians`` takes three small steps:

1. how many values of each kind lie in each range of ``duration_buckets`` (5 % wide) comes
   from ``duration_days`` for the period's whole days (kept by triggers, revision 0005),
   plus the values of its first, partial day read from the tickets;
2. walking the ranges in order up to the middle rank gives the range that holds the
   middle value, and how many values of the period lie under it;
3. that range's values of the period are read in order from ``ix_tickets_<kind>_value``
   (value, created_at): the middle is the ``rank - under``-th of them.

The values are the tickets' own, so the result is the exact median (``percentile_cont(0.5)``:
the mean of the two middle values for an even count). Should the ranges not add up to the
count of the totals (a store written without the triggers), the median is taken by the
full sort of ``middles``, which also gives each first responder's median on SQLite.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from store.day_totals import histogram_from
from store.models import DURATIONS, UTCDateTime

STATS_INDEX = "ix_tickets_stats"  # revision 0003: every duration of the period, covered
_COMPOUND_LIMIT = 200  # SELECTs per statement (SQLite allows 500 by default)


@dataclass(frozen=True, slots=True)
class Middle:
    """One median asked for: of ``column`` (of one first responder), ``count`` values in
    the period."""

    column: str
    count: int
    responder: str | None = None


MEASURES = DURATIONS  # duration_days.measure -> the ticket's column


def period_medians(
    session: Session, since: datetime | None, wanted: dict[str, int]
) -> dict[str, float | None]:
    """The median of each measure in ``wanted`` (measure -> count of its values in the
    period) over the tickets created since ``since`` (None: ever), not merged away."""
    if not wanted:
        return {}
    first_day, partial = whole_days(since)
    bounds = _bounds(session)
    ranges = histogram_from(session, first_day, list(wanted)) if bounds else {}
    if partial is not None and bounds:
        for measure, values in _values_between(session, partial, list(wanted)).items():
            for value in values:
                ranges[measure][bounds[bisect_right(bounds, value) - 1]] += 1
    found: dict[str, float | None] = {}
    for measure, count in wanted.items():
        if measure in ranges and sum(ranges[measure].values()) == count:
            found[measure] = _median_in_ranges(session, since, measure, ranges[measure], bounds)
    rest = [Middle(MEASURES[m], count) for m, count in wanted.items() if m not in found]
    by_column = {column: measure for measure, column in MEASURES.items()}
    for middle, median in zip(rest, middles(session, STATS_INDEX, since, rest), strict=True):
        found[by_column[middle.column]] = median
    return found


def whole_days(since: datetime | None) -> tuple[date | None, tuple[datetime, datetime] | None]:
    """The first whole UTC day of the period from ``since``, and the part of a day before
    it that the period holds (None when it starts at midnight)."""
    if since is None:
        return None, None
    day = since.astimezone(UTC).date()
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    if since == midnight:
        return day, None
    return day + timedelta(days=1), (since, midnight + timedelta(days=1))


def _bounds(session: Session) -> list[float]:
    return [float(low) for low in session.execute(sa.text(_BOUNDS)).scalars()]


_BOUNDS = "SELECT low FROM duration_buckets ORDER BY low"


def _values_between(
    session: Session, span: tuple[datetime, datetime], measures: list[str]
) -> dict[str, list[float]]:
    columns = [MEASURES[m] for m in measures]
    rows = session.execute(
        sa.text(
            f"SELECT {', '.join(columns)} FROM tickets WHERE merged_into IS NULL"
            " AND created_at >= :start AND created_at < :end"
        ).bindparams(
            sa.bindparam("start", type_=UTCDateTime()), sa.bindparam("end", type_=UTCDateTime())
        ),
        {"start": span[0], "end": span[1]},
    ).all()
    return {
        measure: [float(row[n]) for row in rows if row[n] is not None]
        for n, measure in enumerate(measures)
    }


def _median_in_ranges(
    session: Session,
    since: datetime | None,
    measure: str,
    ranges: Counter[float],
    bounds: list[float],
) -> float | None:
    count = sum(ranges.values())
    if not count:
        return None
    ranks = sorted({(count - 1) // 2, count // 2})
    picked: list[float] = []
    under = 0
    for low in sorted(ranges):
        inside = ranges[low]
        wanted = [rank - under for rank in ranks if under <= rank < under + inside]
        if wanted:
            later = bisect_right(bounds, low)
            high = bounds[later] if later < len(bounds) else 1e300  # the last range
            picked += _values_in_range(
                session, since, measure, (low, high), (wanted[0], len(wanted))
            )
        under += inside
    return sum(picked) / len(picked) if len(picked) == len(ranks) else None


def _values_in_range(
    session: Session,
    since: datetime | None,
    measure: str,
    span: tuple[float, float],
    rows: tuple[int, int],
) -> list[float]:
    """Of the period's values of ``measure`` in ``span`` (low included, high not), in
    order, the ``rows`` (skip, take) ones, read from its value index."""
    column = MEASURES[measure]
    skip, take = rows
    where, params, binds = _period_where(since)
    where += [f"{column} >= :low", f"{column} < :high"]
    params.update(low=span[0], high=span[1], skip=skip, take=take)
    indexed = (
        f" INDEXED BY ix_tickets_{measure}_value"
        if session.get_bind().dialect.name == "sqlite"
        else ""
    )
    statement = sa.text(
        f"SELECT {column} FROM tickets{indexed} WHERE {' AND '.join(where)}"
        f" ORDER BY {column} LIMIT :take OFFSET :skip"
    ).bindparams(*binds)
    return [float(v) for v in session.execute(statement, params).scalars()]


def _period_where(since: datetime | None) -> tuple[list[str], dict[str, Any], list[Any]]:
    where, params, binds = ["merged_into IS NULL"], {}, []
    if since is not None:
        where.append("created_at >= :since")
        params["since"] = since
        binds.append(sa.bindparam("since", type_=UTCDateTime()))
    return where, params, binds


def middles(
    session: Session, index: str, since: datetime | None, wanted: list[Middle]
) -> list[float | None]:
    """The medians asked for, each the middle one or two values in order, in one
    statement (a UNION ALL of ORDER BY ... LIMIT ... OFFSET subqueries). On SQLite it names
    the covering index (``INDEXED BY``): on its own the planner takes created_at's and
    reads every ticket row of the period."""
    found: dict[int, list[float]] = {n: [] for n in range(len(wanted))}
    indexed = f" INDEXED BY {index}" if session.get_bind().dialect.name == "sqlite" else ""
    for start in range(0, len(wanted), _COMPOUND_LIMIT):
        parts: list[str] = []
        where_period, params, binds = _period_where(since)
        for n, middle in enumerate(wanted[start : start + _COMPOUND_LIMIT], start):
            column = middle.column
            where = [*where_period, f"{column} IS NOT NULL"]
            if middle.responder is not None:
                where.append(f"first_responder = :who{n}")
                params[f"who{n}"] = middle.responder
            params[f"n{n}"] = 2 - middle.count % 2
            params[f"skip{n}"] = (middle.count - 1) // 2
            parts.append(
                f"SELECT {n} AS k, v FROM (SELECT {column} AS v FROM tickets{indexed}"
                f" WHERE {' AND '.join(where)} ORDER BY {column} LIMIT :n{n} OFFSET :skip{n})"
                f" AS m{n}"
            )
        statement = sa.text(" UNION ALL ".join(parts)).bindparams(*binds)
        for k, value in session.execute(statement, params).all():
            found[k].append(float(value))
    return [sum(v) / len(v) if v else None for v in found.values()]
