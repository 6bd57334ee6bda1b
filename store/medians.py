"""Exact medians of a reporting period on SQLite, which has no percentile aggregate.

A median is the middle one or two values in order: ``ORDER BY v LIMIT 1|2 OFFSET (n-1)/2``
(``middles``), which sorts every value of the period. A sort costs far more than the
read of the index (at a million tickets, about 2 µs a value against 0.3 µs), so for a
large period ``period_medians`` sorts a slice only:

1. a sample (every ``SAMPLE_EVERY``-th ticket by id) gives a range of values that holds
   the median with near certainty (the sample's middle, plus and minus ``MARGIN`` standard
   errors of its rank);
2. the pass over the period that sums the durations (``store/stats.py``) also counts,
   per duration, the values under the range and inside it (``range_counts``);
3. one more pass reads the values inside the ranges (a few percent of the period); the
   median is the ``(n-1)/2 - under``-th of them in order (and the next, for an even n).

Which values are picked never depends on the sample, only the work does: when the middle
is not in the range (a very unlikely sample), that median is taken by the full sort.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, literal_column
from sqlmodel import Session

from store.models import UTCDateTime

STATS_INDEX = "ix_tickets_stats"  # revision 0003: every duration of the period, covered
SAMPLE_EVERY = 32  # tickets (by id) per sampled ticket
SAMPLED_FROM = 4_000  # values (about): a smaller period is sorted whole
MARGIN = 4.0  # standard errors of the sample middle's rank on each side
_COMPOUND_LIMIT = 200  # SELECTs per statement (SQLite allows 500 by default)


@dataclass(frozen=True, slots=True)
class Middle:
    """One median asked for: of ``column`` (of one first responder), ``count`` values in
    the period."""

    column: str
    count: int
    responder: str | None = None


def sample_ranges(
    session: Session, since: datetime | None, columns: list[str]
) -> dict[str, tuple[float, float]]:
    """Per column with enough values in the period, a range of values around the middle
    of a sample of them (a column left out is sorted whole)."""
    where, params = _driver_period_where(since)
    rows = _driver_rows(
        session,
        f"SELECT {', '.join(columns)} FROM tickets INDEXED BY {STATS_INDEX}"
        f" WHERE {' AND '.join(where)} AND id % {SAMPLE_EVERY} = 0",
        params,
    )
    ranges = {}
    for column, sampled in zip(
        columns, zip(*rows, strict=True) if rows else [()] * len(columns), strict=True
    ):
        values = sorted(v for v in sampled if v is not None)
        if len(values) < SAMPLED_FROM // SAMPLE_EVERY:
            continue  # a small period: sorted whole
        middle = len(values) // 2
        margin = math.ceil(MARGIN * math.sqrt(len(values)) / 2)  # a rank's error: sqrt(s)/2
        low = values[max(0, middle - margin)]
        high = values[min(len(values) - 1, middle + margin)]
        ranges[column] = (float(low), float(high))
    return ranges


def range_counts(ranges: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Aggregates for the pass over the period: per column, how many of its values are
    under its range (``<column>:under``) and inside it (``<column>:inside``)."""
    figures = {}
    for column, (low, high) in ranges.items():
        value: Any = literal_column(column)
        figures[f"{column}:under"] = func.count().filter(value < low)
        figures[f"{column}:inside"] = func.count().filter(value.between(low, high))
    return figures


def period_medians(
    session: Session,
    since: datetime | None,
    wanted: dict[str, int],
    ranges: dict[str, tuple[float, float]],
    counted: dict[str, int],
) -> dict[str, float | None]:
    """The median of each column in ``wanted`` (column -> count of its values) over the
    tickets created since ``since`` and not merged away; ``ranges`` from ``sample_ranges``
    and ``counted`` the sums of ``range_counts`` over the period."""
    sliced: dict[str, tuple[float, float, int]] = {}  # column -> low, high, values under
    for column, (low, high) in ranges.items():
        if column not in wanted:
            continue
        count, under = wanted[column], counted[f"{column}:under"]
        skip = (count - 1) // 2 - under
        if skip >= 0 and skip + 2 - count % 2 <= counted[f"{column}:inside"]:
            sliced[column] = (low, high, under)
    found = _middles_of_ranges(session, since, wanted, sliced) if sliced else {}
    rest = [Middle(column, count) for column, count in wanted.items() if column not in found]
    found.update(
        zip([m.column for m in rest], middles(session, STATS_INDEX, since, rest), strict=True)
    )
    return {column: found[column] for column in wanted}


def _period_where(since: datetime | None) -> tuple[list[str], dict[str, Any], list[Any]]:
    where, params, binds = ["merged_into IS NULL"], {}, []
    if since is not None:
        where.append("created_at >= :since")
        params["since"] = since
        binds.append(sa.bindparam("since", type_=UTCDateTime()))
    return where, params, binds


def _driver_period_where(since: datetime | None) -> tuple[list[str], dict[str, Any]]:
    """``_period_where`` for the driver: times as ``UTCDateTime`` stores them on SQLite."""
    where, params = ["merged_into IS NULL"], {}
    if since is not None:
        where.append("created_at >= :since")
        stored = since.astimezone(UTC).replace(tzinfo=None)
        params["since"] = stored.isoformat(sep=" ", timespec="microseconds")
    return where, params


def _driver_rows(session: Session, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Plain tuples from the driver, in the session's transaction: these reads return
    thousands of rows, whose result rows SQLAlchemy would take longer to build than
    SQLite to find."""
    cursor = session.connection().connection.cursor()
    try:
        return list(cursor.execute(sql, params).fetchall())
    finally:
        cursor.close()


def _middles_of_ranges(
    session: Session,
    since: datetime | None,
    wanted: dict[str, int],
    sliced: dict[str, tuple[float, float, int]],
) -> dict[str, float | None]:
    """The middle values of the columns in ``sliced``, from one read of the period's
    values inside their ranges (a few percent of the period), sorted here."""
    where, params = _driver_period_where(since)
    inside, picked = [], []
    for n, (column, (low, high, _)) in enumerate(sliced.items()):
        params[f"low{n}"], params[f"high{n}"] = low, high
        inside.append(f"{column} BETWEEN :low{n} AND :high{n}")
        picked.append(f"CASE WHEN {inside[-1]} THEN {column} END")
    rows = _driver_rows(
        session,
        f"SELECT {', '.join(picked)} FROM tickets INDEXED BY {STATS_INDEX}"
        f" WHERE {' AND '.join(where)} AND ({' OR '.join(inside)})",
        params,
    )
    found: dict[str, float | None] = {}
    columns = zip(*rows, strict=True) if rows else [()] * len(sliced)
    for (column, (_, _, under)), inside_values in zip(sliced.items(), columns, strict=True):
        values = sorted(v for v in inside_values if v is not None)
        count = wanted[column]
        skip = (count - 1) // 2 - under
        pair = values[skip : skip + 2 - count % 2]
        found[column] = float(sum(pair)) / len(pair)
    return found


def middles(
    session: Session, index: str, since: datetime | None, wanted: list[Middle]
) -> list[float | None]:
    """The medians asked for, each the middle one or two values in order, in one
    statement (a UNION ALL of ORDER BY ... LIMIT ... OFFSET subqueries). Written out to
    name the covering index (``INDEXED BY``): on its own the planner takes created_at's
    and reads every ticket row of the period."""
    found: dict[int, list[float]] = {n: [] for n in range(len(wanted))}
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
                f"SELECT {n} AS k, v FROM (SELECT {column} AS v FROM tickets INDEXED BY {index}"
                f" WHERE {' AND '.join(where)} ORDER BY {column} LIMIT :n{n} OFFSET :skip{n})"
            )
        statement = sa.text(" UNION ALL ".join(parts)).bindparams(*binds)
        for k, value in session.execute(statement, params).all():
            found[k].append(float(value))
    return [sum(v) / len(v) if v else None for v in found.values()]
