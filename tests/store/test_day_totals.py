"""The per-day totals and duration ranges of ``stats`` (``store/day_totals.py``, revision
0005) equal the aggregates of the tickets after any sequence of changes, through whichever
path makes them, after rollbacks and compaction, and as revision 0005 counts a store that
had tickets before it."""

from __future__ import annotations

import random
from bisect import bisect_right
from collections import Counter
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from store import day_totals
from store.db import Database
from store.durations import record_durations
from store.enums import Status
from store.lifecycle import change_status
from store.migrate import upgrade
from store.models import DURATIONS, DurationDay, Ticket
from store.sla import settle
from store.tickets import NewTicket, open_ticket
from tests.store.test_counts import NOW, SLA, _random_change

MEASURES = DURATIONS


def _day(session: Session) -> str:
    return (
        "created_at::date"
        if session.get_bind().dialect.name == "postgresql"
        else "date(created_at)"
    )


def _counted(session: Session) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The figures straight from the tickets, with the verdicts of ``SLA``."""
    first = "sla_first_response_seconds"
    done = "sla_resolution_seconds"
    below = {(phase, priority): limit for phase, priority, _, limit in day_totals.limits_for(SLA)}
    rows = session.execute(
        sa.text(
            f"SELECT {_day(session)}, priority, type, sector, {', '.join(MEASURES.values())},"
            f" {first}, {done} FROM tickets WHERE merged_into IS NULL"
        )
    ).all()
    figures: dict[tuple[Any, ...], list[Any]] = {}
    for day, priority, kind, sector, *values, sla_first, sla_done in rows:
        into = figures.setdefault((str(day), priority, kind, sector), [0] * 13)
        into[0] += 1
        for n, value in enumerate(values):
            if value is not None:
                into[1 + 2 * n] += 1
                into[2 + 2 * n] += value
        for n, (phase, measured) in enumerate(
            (("first_response", sla_first), ("resolution", sla_done))
        ):
            if measured is not None:
                into[9 + 2 * n] += 1
                into[10 + 2 * n] += int(measured < below[(phase, priority)])
    return {group: _rounded(values) for group, values in figures.items()}


def _kept(session: Session) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    table = day_totals.TicketDayTotal.__table__  # type: ignore[attr-defined]
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for row in session.execute(sa.select(table).order_by(table.c.id)):
        values = row._mapping
        group = (str(values["day"]), values["priority"], values["type"], values["sector"])
        into = sums.setdefault(group, [0] * 13)
        for n, name in enumerate(day_totals.FIGURES):
            into[n] += values[name]
    return {group: _rounded(values) for group, values in sums.items() if values[0]}


def _rounded(values: list[Any]) -> tuple[Any, ...]:
    return tuple(round(v, 3) if isinstance(v, float) else v for v in values)


def _ranges_counted(session: Session) -> Counter[tuple[str, str, float]]:
    lows = session.execute(sa.text("SELECT low FROM duration_buckets ORDER BY low")).scalars()
    bounds = [float(b) for b in lows]
    found: Counter[tuple[str, str, float]] = Counter()
    rows = session.execute(
        sa.text(
            f"SELECT {_day(session)}, {', '.join(MEASURES.values())} FROM tickets"
            " WHERE merged_into IS NULL"
        )
    ).all()
    for day, *values in rows:
        for measure, value in zip(MEASURES, values, strict=True):
            if value is not None:
                found[(measure, str(day), bounds[bisect_right(bounds, value) - 1])] += 1
    return found


def _ranges_kept(session: Session) -> Counter[tuple[str, str, float]]:
    found: Counter[tuple[str, str, float]] = Counter()
    for row in session.exec(select(DurationDay)).all():
        found[(row.measure, str(row.day), row.low)] += row.n
    return +found  # without the groups that came back to 0


def _solve_times(session: Session) -> tuple[list[Any], list[Any]]:
    """Each ticket's kept latest solve and reopen, and the same read from its events."""
    kept = session.execute(
        sa.text("SELECT id, last_solved_at, last_reopened_at FROM tickets ORDER BY id")
    ).all()
    counted = session.execute(
        sa.text(
            "SELECT t.id, (SELECT max(at) FROM audit_events e WHERE e.ticket_id = t.id"
            " AND e.action = 'status' AND e.new = 'solved'), (SELECT max(at) FROM"
            " audit_events e WHERE e.ticket_id = t.id AND e.action = 'status'"
            " AND e.old = 'solved' AND e.new = 'open') FROM tickets t ORDER BY t.id"
        )
    ).all()
    return [tuple(r) for r in kept], [tuple(r) for r in counted]


def _measure_some(s: Session, rng: random.Random, at: Any) -> None:
    """Answer and solve some tickets, so that durations and verdicts change too."""
    for t in s.exec(select(Ticket).where(Ticket.merged_into.is_(None))).all():  # type: ignore[union-attr]
        if rng.random() < 0.15 and t.first_response_at is None:
            t.first_response_at = at
            settle(s, t, at, SLA)
        elif rng.random() < 0.1 and t.status == Status.OPEN.value:
            change_status(s, t, Status.SOLVED, actor="x", now=at)
            record_durations(t, SLA.calendar)
            settle(s, t, at, SLA)


def test_random_changes_keep_the_totals_equal_to_the_tickets(db: Database) -> None:
    with db.write() as s:
        day_totals.sync_limits(s, SLA)
    rng = random.Random(5)
    at = NOW - timedelta(days=3)
    for round_ in range(10):
        with db.write() as s:
            for _ in range(25):
                at += timedelta(minutes=rng.choice([7, 90, 600]))
                _random_change(s, rng, at)
            _measure_some(s, rng, at)
            s.flush()
            assert _kept(s) == _counted(s), "in the writer's own transaction"
            assert _ranges_kept(s) == _ranges_counted(s)
            if round_ % 4 == 1:  # an event moved back in time, another deleted
                s.execute(
                    sa.text(
                        "UPDATE audit_events SET at = :at WHERE id = (SELECT max(id) FROM"
                        " audit_events WHERE action = 'status' AND new = 'solved')"
                    ),
                    {"at": (NOW - timedelta(days=30)).replace(tzinfo=None)},
                )
                s.execute(
                    sa.text(
                        "DELETE FROM audit_events WHERE id = (SELECT min(id) FROM audit_events"
                        " WHERE action = 'status' AND old = 'solved' AND new = 'open')"
                    )
                )
            kept, counted = _solve_times(s)
            assert kept == counted
        if round_ % 3 == 2:
            with db.write() as s:
                assert day_totals.compact(s) > 0
        with db.read() as s:
            assert _kept(s) == _counted(s)
            assert _ranges_kept(s) == _ranges_counted(s)
    with db.read() as s:
        kept = _kept(s)
        assert len({day for day, *_ in kept}) >= 3  # several days
        assert sum(v[1] for v in kept.values()) > 5  # first responses measured
        assert sum(v[10] for v in kept.values()) > 0  # and some of them met their target
        assert len(_ranges_kept(s)) > 10
        kept, _ = _solve_times(s)
        assert sum(1 for _, solved, again in kept if solved and again) > 0  # some reopened


def test_a_ticket_written_with_its_durations_gets_their_ranges_at_once(db: Database) -> None:
    """A ticket is opened with no duration, and its insert adds no range (revision 0007 on
    PostgreSQL skips that step); one written with durations already measured (a bulk
    load, a copy) has its ranges counted by the same insert."""
    with db.write() as s:
        day_totals.sync_limits(s, SLA)
        open_ticket(s, NewTicket(subject="fresh", requester="ana@magazin.ro"), actor="a", now=NOW)
        s.flush()
        assert _ranges_kept(s) == Counter() == _ranges_counted(s)

        def measured(ticket: Ticket) -> None:
            ticket.first_response_wall_seconds = 4000.0
            ticket.resolution_business_seconds = 30.0

        open_ticket(
            s,
            NewTicket(subject="loaded", requester="ana@magazin.ro"),
            actor="a",
            now=NOW,
            before_insert=measured,
        )
        s.flush()
        assert sorted(measure for measure, _, _ in _ranges_kept(s)) == ["fw", "rb"]
        assert _ranges_kept(s) == _ranges_counted(s)
        assert _kept(s) == _counted(s)


def test_a_rolled_back_change_leaves_the_totals_alone(db: Database) -> None:
    with db.write() as s:
        open_ticket(s, NewTicket(subject="s", requester="ana@magazin.ro"), actor="a", now=NOW)
    with db.read() as s:
        before = (_kept(s), _ranges_kept(s))
    try:
        with db.write() as s:
            t = s.exec(select(Ticket)).one()
            t.first_response_wall_seconds, t.priority = 60.0, "high"
            s.add(t)
            s.flush()
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    with db.read() as s:
        assert (_kept(s), _ranges_kept(s)) == before


def test_compaction_folds_the_rows_into_one_per_group(db: Database) -> None:
    with db.write() as s:
        t = open_ticket(s, NewTicket(subject="s", requester="ana@magazin.ro"), actor="a", now=NOW)
        for seconds in (30.0, 90.0, 91.0):  # two ranges, then the same range again
            t.first_response_wall_seconds = seconds
            s.add(t)
            s.flush()
        # ranges [30, 31) and [89, 93): +30; -30 +89; nothing for 91
        assert len(s.exec(select(DurationDay)).all()) == 3
        totals = s.execute(sa.text("SELECT COUNT(*) FROM ticket_day_totals")).scalar_one()
        assert totals == 1 + 3 * 2  # the new ticket, then -old +new per change
    with db.write() as s:
        assert day_totals.compact(s) == (7 - 1) + (3 - 1)
        assert [(r.measure, r.n) for r in s.exec(select(DurationDay)).all()] == [("fw", 1)]
        assert day_totals.compact(s) == 0
        assert _kept(s) == _counted(s)


def test_revision_0005_counts_the_tickets_already_in_the_store(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    upgrade(engine, "0004")
    at = NOW.replace(tzinfo=None)
    with engine.begin() as c:  # plain SQL: the models describe the newest schema
        for n in range(6):
            c.execute(
                sa.text(
                    "INSERT INTO tickets (id, subject, status, type, sector, priority,"
                    " priority_rank, requester, requester_name, verified, confidential,"
                    " language, created_at, updated_at, sla_clock, sla_used_seconds,"
                    " first_response_wall_seconds, sla_first_response_seconds) VALUES (:id,"
                    " 's', 'open', 'question', 'support', 'normal', 2, 'a@b.ro', '', false,"
                    " false, 'ro', :at, :at, 'paused', 0, :fw, :sla)"
                ),
                {"id": n + 1, "at": at - timedelta(days=n), "fw": 60.0 * n, "sla": 3600.0 * n},
            )
        events = [(1, "open", "solved", 1), (1, "solved", "open", 2), (2, "open", "solved", 3)]
        for ticket, old, new, hours in events:
            c.execute(
                sa.text(
                    "INSERT INTO audit_events (ticket_id, at, actor, action, old, new, detail)"
                    " VALUES (:t, :at, 'x', 'status', :old, :new, '')"
                ),
                {"t": ticket, "at": at + timedelta(hours=hours), "old": old, "new": new},
            )
    upgrade(engine, "head")
    db = Database(sqlite_url)
    with db.write() as s:
        assert _ranges_kept(s) == _ranges_counted(s)
        assert not day_totals.limits_match(s, SLA)
        assert day_totals.sync_limits(s, SLA)
        assert not day_totals.sync_limits(s, SLA)
        assert _kept(s) == _counted(s)
        solve_times = s.execute(
            sa.text("SELECT id, last_solved_at IS NOT NULL, last_reopened_at IS NOT NULL"
                    " FROM tickets WHERE id <= 3 ORDER BY id")
        ).all()  # fmt: skip
        assert [tuple(r) for r in solve_times] == [(1, 1, 1), (2, 1, 0), (3, 0, 0)]
    db.dispose()
    engine.dispose()


def test_a_fold_rewrites_only_the_groups_changed_since_the_last(db: Database) -> None:
    with db.write() as s:
        for days in (1, 2):
            t = open_ticket(
                s,
                NewTicket(subject="s", requester="ana@magazin.ro"),
                actor="a",
                now=NOW - timedelta(days=days),
            )
            t.first_response_wall_seconds = 30.0 * days
            s.add(t)
        s.flush()
        day_totals.compact(s)
    with db.read() as s:
        before = {(r.measure, r.day, r.low): r.id for r in s.exec(select(DurationDay)).all()}
    with db.write() as s:
        t = s.exec(select(Ticket).order_by(Ticket.id)).first()  # type: ignore[arg-type]
        assert t is not None
        t.first_response_wall_seconds = 45.0  # the first day's ticket only
        s.add(t)
        s.flush()
        assert day_totals.compact(s) > 0
        assert day_totals.compact(s) == 0  # folded: nothing new since
    with db.read() as s:
        after = {(r.measure, r.day, r.low): r.id for r in s.exec(select(DurationDay)).all()}
        assert _ranges_kept(s) == _ranges_counted(s) and _kept(s) == _counted(s)
    untouched = (NOW - timedelta(days=2)).date()
    assert {k: v for k, v in after.items() if k[1] == untouched} == {
        k: v for k, v in before.items() if k[1] == untouched
    }  # the other day's row was not read again (same id)
    assert set(after) - set(before)  # the changed day's range moved
