"""The sampled medians of SQLite (``store/medians.py``) are the exact medians, whether the
sample's range holds the middle or not, with ties and missing values."""

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
COLUMNS = ("first_response_wall_seconds", "resolution_wall_seconds")


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Database]:
    db = Database(sqlite_url)
    db.upgrade()
    rng = random.Random(3)
    rows = []
    for tid in range(1, 4002):
        created = NOW - timedelta(days=rng.uniform(0, 60))
        rows.append(
            {
                "id": tid,
                "created": created.replace(tzinfo=None),
                "merged": 1 if rng.random() < 0.03 and tid > 1 else None,
                "first": None if rng.random() < 0.1 else round(rng.expovariate(1 / 3600), 3),
                "done": None if rng.random() < 0.4 else float(rng.randrange(0, 400) * 60),
            }
        )
    with db.engine.begin() as c:
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
    yield db
    db.dispose()


def _expected(db: Database, since: datetime | None) -> dict[str, float]:
    with db.read() as s:
        got = {}
        for column in COLUMNS:
            query = (
                f"SELECT {column} FROM tickets WHERE merged_into IS NULL AND {column} IS NOT NULL"
            )
            params = {}
            if since is not None:
                query += " AND created_at >= :since"
                params["since"] = since.replace(tzinfo=None)
            got[column] = statistics.median(s.execute(sa.text(query), params).scalars().all())
        return got


def _medians(db: Database, since: datetime | None) -> dict[str, float | None]:
    """What ``workflow_stats`` does: sample, count in one pass, then the medians."""
    where = ["merged_into IS NULL"]
    params = {}
    if since is not None:
        where.append("created_at >= :since")
        params["since"] = since.replace(tzinfo=None)
    with db.read() as s:
        ranges = medians.sample_ranges(s, since, list(COLUMNS))
        figures = {f"{c}:count": sa.func.count(sa.literal_column(c)) for c in COLUMNS}
        figures.update(medians.range_counts(ranges))
        row = s.execute(
            sa.select(*figures.values())
            .select_from(sa.table("tickets"))
            .where(*(sa.text(w) for w in where))
            .params(params)
        ).one()
        counted = dict(zip(figures, row, strict=True))
        counts = {c: counted[f"{c}:count"] for c in COLUMNS}
        return medians.period_medians(s, since, counts, ranges, counted)


@pytest.mark.parametrize("days", [None, 30, 7])
def test_sampled_medians_are_the_exact_medians(
    store: Database, days: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    since = None if days is None else NOW - timedelta(days=days)
    whole = _medians(store, since)  # the period is small: sorted whole
    monkeypatch.setattr(medians, "SAMPLED_FROM", 100)
    monkeypatch.setattr(medians, "SAMPLE_EVERY", 4)
    sliced: list[str] = []
    read = medians._middles_of_ranges

    def spy(*args: object) -> dict[str, float | None]:
        found = read(*args)  # type: ignore[arg-type]
        sliced.extend(found)
        return found

    monkeypatch.setattr(medians, "_middles_of_ranges", spy)
    assert _medians(store, since) == _expected(store, since) == whole
    assert sorted(sliced) == sorted(COLUMNS)  # both from their ranges


def test_a_range_without_the_middle_falls_back_to_the_full_sort(
    store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(medians, "SAMPLED_FROM", 100)
    monkeypatch.setattr(  # ranges far below every middle
        medians, "sample_ranges", lambda s, since, columns: dict.fromkeys(columns, (0.0, 1.0))
    )
    assert _medians(store, None) == _expected(store, None)
