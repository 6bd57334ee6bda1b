"""The medians of a reporting period (``store/medians.py``) are the exact medians: found
from the per-day ranges of ``duration_days`` and one range's values, with ties, values on
the ranges' bounds, merged tickets, periods starting mid-day or at midnight, and a store
whose ranges do not add up (the full sort then)."""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from store import medians
from store.db import Database

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MEASURES = {"fw": "first_response_wall_seconds", "rw": "resolution_wall_seconds"}


@pytest.fixture
def store(db: Database) -> Iterator[Database]:
    rng = random.Random(3)
    with db.read() as s:
        bounds = s.execute(sa.text("SELECT low FROM duration_buckets")).scalars().all()
    rows = []
    for tid in range(1, 4002):
        created = NOW - timedelta(days=rng.uniform(0, 60))
        first = round(rng.expovariate(1 / 3600), 3)
        if rng.random() < 0.05:
            first = float(rng.choice(bounds[1:]))  # exactly on a range's lower bound
        rows.append(
            {
                "id": tid,
                "created": created.replace(tzinfo=None),
                "merged": 1 if rng.random() < 0.03 and tid > 1 else None,
                "first": None if rng.random() < 0.1 else first,
                "done": None if rng.random() < 0.4 else float(rng.randrange(0, 400) * 60),
            }
        )
    with db.engine.begin() as c:  # plain SQL: the triggers of revision 0005 count them
        c.execute(
            sa.text(
                "INSERT INTO tickets (id, subject, status, type, sector, priority,"
                " priority_rank, requester, requester_name, verified, confidential, language,"
                " created_at, updated_at, sla_clock, sla_used_seconds, merged_into,"
                " first_response_wall_seconds, resolution_wall_seconds) VALUES (:id, 's',"
                " 'open', 'question', 'support', 'normal', 2, 'a@b.ro', '', false, false,"
                " 'ro', :created, :created, 'paused', 0, :merged, :first, :done)"
            ),
            rows,
        )
        # some values change after the fact, and a ticket is merged away later
        c.execute(sa.text("UPDATE tickets SET first_response_wall_seconds = 7200 WHERE id < 300"))
        c.execute(sa.text("UPDATE tickets SET merged_into = 1 WHERE id BETWEEN 300 AND 320"))
    yield db


def _expected(db: Database, since: datetime | None) -> dict[str, float]:
    got = {}
    with db.read() as s:
        for measure, column in MEASURES.items():
            query = (
                f"SELECT {column} FROM tickets WHERE merged_into IS NULL AND {column} IS NOT NULL"
            )
            params = {}
            if since is not None:
                query += " AND created_at >= :since"
                params["since"] = since.replace(tzinfo=None)
            got[measure] = statistics.median(s.execute(sa.text(query), params).scalars().all())
    return got


def _counts(db: Database, since: datetime | None) -> dict[str, int]:
    with db.read() as s:
        where, params = "merged_into IS NULL", {}
        if since is not None:
            where += " AND created_at >= :since"
            params["since"] = since.replace(tzinfo=None)
        row = s.execute(
            sa.text(f"SELECT {', '.join(f'COUNT({c})' for c in MEASURES.values())} FROM tickets"
                    f" WHERE {where}"),
            params,
        ).one()  # fmt: skip
    return dict(zip(MEASURES, row, strict=True))


@pytest.mark.parametrize(
    "since",
    [None, NOW - timedelta(days=30), NOW - timedelta(days=7, hours=9), NOW - timedelta(hours=5)],
    ids=["ever", "30 days", "from midnight", "part of a day"],
)
def test_the_medians_from_the_ranges_are_the_exact_medians(
    store: Database, since: datetime | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []
    values_in_range = medians._values_in_range

    def spy(*args: object) -> list[float]:
        found = values_in_range(*args)  # type: ignore[arg-type]
        read.append(len(found))
        return found

    monkeypatch.setattr(medians, "_values_in_range", spy)
    with store.read() as s:
        got = medians.period_medians(s, since, _counts(store, since))
    assert got == pytest.approx(_expected(store, since), abs=1e-9)
    assert 2 <= len(read) <= 4  # one range (two, when the middles straddle a bound) each


def test_ranges_that_do_not_add_up_fall_back_to_the_full_sort(store: Database) -> None:
    with store.engine.begin() as c:
        c.execute(sa.text("DELETE FROM duration_days WHERE measure = 'fw' AND n > 0"))
    with store.read() as s:
        got = medians.period_medians(s, None, _counts(store, None))
    assert got == pytest.approx(_expected(store, None), abs=1e-9)


def test_whole_days_split_a_period_at_the_first_midnight() -> None:
    midnight = datetime(2026, 11, 1, tzinfo=UTC)
    assert medians.whole_days(None) == (None, None)
    assert medians.whole_days(midnight) == (midnight.date(), None)
    later = midnight + timedelta(hours=7)
    assert medians.whole_days(later) == (
        (midnight + timedelta(days=1)).date(),
        (later, midnight + timedelta(days=1)),
    )


def test_a_period_without_durations_has_no_medians(db: Database) -> None:
    with db.read() as s:
        assert medians.period_medians(s, NOW - timedelta(hours=5), {}) == {}


def test_without_ranges_a_ticket_is_still_written_and_the_median_sorted(
    sqlite_url: str,
) -> None:
    db = Database(sqlite_url)
    db.upgrade()
    with db.engine.begin() as c:  # a store whose ranges are gone (on SQLite: its own file)
        c.execute(sa.text("DELETE FROM duration_buckets"))
        for tid, seconds in enumerate((30.0, 90.0, 600.0), start=1):
            c.execute(
                sa.text(
                    "INSERT INTO tickets (id, subject, status, type, sector, priority,"
                    " priority_rank, requester, requester_name, verified, confidential,"
                    " language, created_at, updated_at, sla_clock, sla_used_seconds,"
                    " first_response_wall_seconds) VALUES (:id, 's', 'open', 'question',"
                    " 'support', 'normal', 2, 'a@b.ro', '', false, false, 'ro', :at, :at,"
                    " 'paused', 0, :fw)"
                ),
                {"id": tid, "at": NOW.replace(tzinfo=None), "fw": seconds},
            )
    with db.read() as s:
        assert medians.period_medians(s, NOW - timedelta(days=1), {"fw": 3}) == {"fw": 90.0}
    db.dispose()
