"""Queue figures for ``mailgate stats``: backlog, response and resolution times, SLA
results, reopen rate, per agent and per shop.

Times are given in minutes, each as wall-clock time and as business time (working hours of
the business calendar only). SLA results are judged on the SLA clock itself (pauses while
waiting for the merchant excluded, ``immediate`` on 24/7 time), so they agree with the
deadlines agents saw in the queue. Merged tickets are duplicates and are left out of the
time and SLA figures.

A reporting period (``since``; None: all time) limits the figures that describe work done:

- response and resolution times, SLA results and first responses per agent: tickets
  *created* since then (a ticket created in the period and solved after it counts once it
  is solved; one created before it does not count, whenever it was solved);
- replies per agent: outbound messages sent since then;
- reopen rate: tickets solved since then (a status event), and of those the ones
  reopened since then;
- minutes logged (per agent and per shop): time entries made since then.

The counts stay whole-store: tickets by status, the backlog (not closed) by sector,
priority and status, and each agent's open and breached tickets.

Nothing is computed per ticket in Python. Where each figure comes from:

- tickets by status, the backlog by sector, priority and status, and each agent's open
  tickets: ``ticket_counts`` (``store/counts.py``), kept by triggers as tickets change;
  each agent's breached tickets are the open ones minus those still in time, read from
  ``ix_tickets_open_due`` (due later, or never);
- replies per agent: ``reply_counts`` for the whole days of the period, kept by
  triggers as messages are written, and the messages of its first, partial day
  (``ix_messages_replies``);
- counts, means and SLA verdicts of the durations: one pass over the period
  (``ix_tickets_stats``) grouped by priority, type and sector; the durations are stored
  on the ticket when they happen (``store/durations.py``);
- the four medians: ``percentile_cont`` on PostgreSQL; on SQLite the middle values of a
  slice around a sampled middle, counted in the same pass (``store/medians.py``);
- first responses per agent: one grouped pass (PostgreSQL, with ``percentile_cont``), or
  sums from ``ix_tickets_stats_responder`` and a short sort per agent (SQLite);
- reopen rate: one pass over the period's status events (``ix_audit_events_status``);
- minutes logged: the time entries of the period (``ix_time_entries_at``).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import and_, case, func, literal_column
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from store.counts import replies_by_author, ticket_counts
from store.durations import business_backfill_pending
from store.enums import Priority, Status
from store.medians import Middle, period_medians, range_counts, sample_ranges
from store.medians import middles as sqlite_middles
from store.models import AuditEvent, Ticket
from store.sla import Phase, SlaPolicy
from store.timelog import time_by_agent, time_by_shop

DEFAULT_PERIOD_DAYS = 30
SORT_MEMORY_MB = 64  # PostgreSQL work_mem of the stats transaction

_fw = col(Ticket.first_response_wall_seconds)
_fb = col(Ticket.first_response_business_seconds)
_rw = col(Ticket.resolution_wall_seconds)
_rb = col(Ticket.resolution_business_seconds)


def default_since(now: datetime) -> datetime:
    """The start of the default reporting period of ``mailgate stats``."""
    return now - timedelta(days=DEFAULT_PERIOD_DAYS)


def queue_stats(session: Session) -> dict[str, Any]:
    """Tickets by status (all), and the open backlog (not closed) by sector and priority."""
    return _queue(ticket_counts(session))


Counts = list[tuple[str, str, str, str, int]]  # status, sector, priority, assignee, tickets


def _queue(counts: Counts) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    by_sector: dict[str, int] = {}
    by_priority: dict[str, int] = {}
    for status, sector, priority, _, count in counts:
        by_status[status] = by_status.get(status, 0) + count
        if status != Status.CLOSED.value:
            by_sector[sector] = by_sector.get(sector, 0) + count
            by_priority[priority] = by_priority.get(priority, 0) + count
    return {
        "total": sum(by_status.values()),
        "by_status": {s.value: by_status.get(s.value, 0) for s in Status},
        "by_sector": by_sector,
        "by_priority": by_priority,
    }


def workflow_stats(
    session: Session, policy: SlaPolicy, now: datetime, *, since: datetime | None = None
) -> dict[str, Any]:
    """Everything ``mailgate stats`` shows: ``queue_stats`` plus the workflow figures of
    the period from ``since`` (None: all time) to ``now``."""
    if _is_postgresql(session):
        _tune_postgresql(session)
    counts = ticket_counts(session)
    period = _period(since)
    # SQLite: a range around each median, counted in the pass over the period (medians.py)
    ranges = {} if _is_postgresql(session) else sample_ranges(session, since, list(_NAMES.values()))
    groups = _period_groups(session, policy, now, period, range_counts(ranges))
    first_wall = _summary(groups, "fw")
    first_business = _summary(groups, "fb")
    done_wall = _summary(groups, "rw")
    done_business = _summary(groups, "rb")
    medians = _medians(
        session,
        period,
        since,
        {"fw": first_wall, "fb": first_business, "rw": done_wall, "rb": done_business},
        (ranges, {key: sum(g[key] for g in groups) for key in range_counts(ranges)}),
    )
    for key, summary in (
        ("fw", first_wall),
        ("fb", first_business),
        ("rw", done_wall),
        ("rb", done_business),
    ):
        summary["median"] = _rounded_minutes(medians.get(key))
    return {
        **_queue(counts),
        "period": {
            "since": since.isoformat() if since else None,
            "until": now.isoformat(),
            "tickets": "created",
            "business_time_complete": not business_backfill_pending(session),
        },
        "first_response_minutes": {"wall_clock": first_wall, "business": first_business},
        "resolution_minutes": {"wall_clock": done_wall, "business": done_business},
        "sla": _sla_results(groups),
        "backlog": _backlog(counts),
        "reopen": _reopen_rate(session, since),
        "agents": _agents(session, counts, period, since, now),
        "time_by_shop": {
            name: {"minutes": spent.minutes, "calls": spent.calls}
            for name, spent in sorted(time_by_shop(session, since=since).items())
        },
    }


def _tune_postgresql(session: Session) -> None:
    """Settings for this transaction only. The medians sort every duration of the period:
    in memory, not in temporary files (the default 4 MB holds about 80,000 of them).
    Each statement is planned for its own period (a driver that prepares a statement run
    often would otherwise get a generic plan, made for a third of the table), and without
    JIT, whose compiling costs more than these ~100 ms statements gain from it."""
    session.execute(sa.text(f"SET LOCAL work_mem = '{SORT_MEMORY_MB}MB'"))
    session.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
    session.execute(sa.text("SET LOCAL jit = off"))


def _period(since: datetime | None) -> list[ColumnElement[bool]]:
    """Tickets of the period, not merged away: the range of ``ix_tickets_stats``.

    ``merged_into IS NULL`` is the partial index's own condition, written so SQLite sees it.
    """
    where: list[ColumnElement[bool]] = [literal_column("tickets.merged_into IS NULL")]
    if since is not None:
        where.append(col(Ticket.created_at) >= since)
    return where


def _limit(policy: SlaPolicy, phase: Phase) -> Any:
    """Per row, the first measured value that misses the target: ``is_met`` holds when
    ``floor(seconds) <= target``, that is ``seconds < floor(target) + 1``."""
    priority, kind = col(Ticket.priority), col(Ticket.type)
    whens: list[tuple[Any, float]] = [
        (and_(priority == p, kind == t), float(math.floor(v) + 1))
        for (ph, t, p), v in policy.by_type.items()
        if ph is phase
    ]
    targets = policy.first_response if phase is Phase.FIRST_RESPONSE else policy.resolution
    whens += [(priority == p, float(math.floor(v) + 1)) for p, v in targets.items()]
    return case(*whens, else_=None)


def _period_groups(
    session: Session,
    policy: SlaPolicy,
    now: datetime,
    period: list[ColumnElement[bool]],
    extra: dict[str, Any],
) -> list[dict[str, Any]]:
    """One pass over the period: sums and counts of the durations and the SLA verdicts,
    per priority, type and sector (a few dozen groups).

    A verdict is "met" when measured under the target, "breached" when measured at or
    over it, or not measured and still running past its deadline in that phase (first
    response until the ticket was answered, then resolution). Per row only what cannot
    be had otherwise is tested: measured-over is the measured count minus the met one,
    as every group has one target (it depends on priority and type only).
    """
    sla_first = col(Ticket.sla_first_response_seconds)
    sla_done = col(Ticket.sla_resolution_seconds)
    first_limit, done_limit = _limit(policy, Phase.FIRST_RESPONSE), _limit(policy, Phase.RESOLUTION)
    past_due = col(Ticket.due_at) <= now

    def tally(condition: Any) -> Any:
        return func.count().filter(condition)

    figures = {
        "fw_n": func.count(_fw),
        "fw_sum": func.sum(_fw),
        "fb_n": func.count(_fb),
        "fb_sum": func.sum(_fb),
        "rw_n": func.count(_rw),
        "rw_sum": func.sum(_rw),
        "rb_n": func.count(_rb),
        "rb_sum": func.sum(_rb),
        "first_measured": func.count(sla_first),
        "first_met": tally(sla_first < first_limit),
        "first_late": tally(sla_first.is_(None) & _fw.is_(None) & past_due),
        "done_measured": func.count(sla_done),
        "done_met": tally(sla_done < done_limit),
        "done_late": tally(sla_done.is_(None) & _fw.is_not(None) & past_due),
        **extra,
    }
    rows = session.execute(
        sa.select(col(Ticket.priority), col(Ticket.type), col(Ticket.sector), *figures.values())
        .where(*period)
        .group_by(col(Ticket.priority), col(Ticket.type), col(Ticket.sector))
    ).all()
    groups = []
    for r in rows:
        g = {
            "priority": r[0],
            "type": r[1],
            "sector": r[2],
            **dict(zip(figures, r[3:], strict=True)),
        }
        for phase, key in ((Phase.FIRST_RESPONSE, "first"), (Phase.RESOLUTION, "done")):
            over = g[f"{key}_measured"] - g[f"{key}_met"] if _has_target(policy, phase, g) else 0
            g[f"{key}_breached"] = over + g[f"{key}_late"]
        groups.append(g)
    return groups


def _has_target(policy: SlaPolicy, phase: Phase, group: dict[str, Any]) -> bool:
    """Whether the tickets of ``group`` have a target in ``phase`` (as ``_limit`` sees it)."""
    try:
        policy.target(phase, group["priority"], group["type"])
    except KeyError:
        return False
    return True


def _summary(groups: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """count and mean (minutes) of one duration; the median is filled in by the caller."""
    count = sum(g[f"{key}_n"] for g in groups)
    if not count:
        return {"count": 0, "mean": None, "median": None}
    total = sum(g[f"{key}_sum"] or 0.0 for g in groups)
    return {"count": count, "mean": _rounded_minutes(total / count), "median": None}


def _rounded_minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


_COLUMNS = {"fw": _fw, "fb": _fb, "rw": _rw, "rb": _rb}


def _medians(
    session: Session,
    period: list[ColumnElement[bool]],
    since: datetime | None,
    summaries: dict[str, dict[str, Any]],
    sliced: tuple[dict[str, tuple[float, float]], dict[str, int]],
) -> dict[str, float | None]:
    """The median (seconds) of each duration over the period; on SQLite ``sliced`` are
    the sampled ranges and their counts (``store/medians.py``)."""
    wanted = {key: s["count"] for key, s in summaries.items() if s["count"]}
    if not wanted:
        return {}
    if _is_postgresql(session):
        row = session.execute(
            sa.select(
                *(func.percentile_cont(0.5).within_group(_COLUMNS[key]) for key in wanted)
            ).where(*period)
        ).one()
        return {key: float(value) for key, value in zip(wanted, row, strict=True)}
    by_column = period_medians(
        session, since, {_NAMES[key]: n for key, n in wanted.items()}, *sliced
    )
    return {key: by_column[_NAMES[key]] for key in wanted}


_NAMES = {
    "fw": "first_response_wall_seconds",
    "fb": "first_response_business_seconds",
    "rw": "resolution_wall_seconds",
    "rb": "resolution_business_seconds",
}


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _sla_results(groups: list[dict[str, Any]]) -> dict[str, Any]:
    def empty() -> dict[str, dict[str, int]]:
        return {p.value: {"met": 0, "breached": 0} for p in Phase}

    by_priority: dict[str, dict[str, dict[str, int]]] = {p.value: empty() for p in Priority}
    by_sector: dict[str, dict[str, dict[str, int]]] = {}
    for g in groups:
        counts = {
            Phase.FIRST_RESPONSE.value: {"met": g["first_met"], "breached": g["first_breached"]},
            Phase.RESOLUTION.value: {"met": g["done_met"], "breached": g["done_breached"]},
        }
        if not any(n for phase in counts.values() for n in phase.values()):
            continue  # no verdict in this group (as before: sectors only with verdicts)
        for table, name in ((by_priority, g["priority"]), (by_sector, g["sector"])):
            into = table.setdefault(name, empty())
            for phase, verdicts in counts.items():
                for verdict, n in verdicts.items():
                    into[phase][verdict] += int(n)
    return {"by_priority": by_priority, "by_sector": dict(sorted(by_sector.items()))}


def _backlog(counts: Counts) -> dict[str, dict[str, int]]:
    """Unclosed tickets per sector and status (merged tickets are closed)."""
    table: dict[str, dict[str, int]] = {}
    for status, sector, _, _, count in counts:
        if status == Status.CLOSED.value:
            continue
        by_status = table.setdefault(sector, {})
        by_status[status] = by_status.get(status, 0) + count
    return dict(sorted(table.items()))


def _reopen_rate(session: Session, since: datetime | None) -> dict[str, Any]:
    """Of the tickets solved in the period, how many a merchant (or agent) opened again:
    one pass over the period's status events to solved, and from solved to open, from
    ``ix_audit_events_status``, grouped by ticket."""
    new, old = col(AuditEvent.new), col(AuditEvent.old)
    where = [
        col(AuditEvent.action) == "status",
        new.in_([Status.SOLVED.value, Status.OPEN.value]),
        col(AuditEvent.ticket_id).is_not(None),
    ]
    if since is not None:
        where.append(col(AuditEvent.at) >= since)
    per_ticket = (
        sa.select(
            func.count().filter(new == Status.SOLVED.value).label("solves"),
            func.count()
            .filter(old == Status.SOLVED.value, new == Status.OPEN.value)
            .label("reopens"),
        )
        .where(*where)
        .group_by(col(AuditEvent.ticket_id))
        .subquery()
    )
    solved, reopened = session.execute(
        sa.select(
            func.count().filter(per_ticket.c.solves > 0),
            func.count().filter(per_ticket.c.solves > 0, per_ticket.c.reopens > 0),
        )
    ).one()
    rate = round(reopened / solved, 3) if solved else None
    return {"solved": solved, "reopened": reopened, "rate": rate}


def _agents(
    session: Session,
    counts: Counts,
    period: list[ColumnElement[bool]],
    since: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    """Per agent: replies sent, first responses given (and how fast), open work, time."""
    replies = replies_by_author(session, since)
    answered = _first_responses(session, period, since)
    open_work = _open_work(session, counts, now)
    logged = time_by_agent(session, since=since)
    names = sorted(set(replies) | set(answered) | set(open_work) | set(logged))
    empty = {"count": 0, "mean": None, "median": None}
    return {
        name: {
            "replies": replies.get(name, 0),
            "first_responses": answered.get(name, empty),
            "assigned_open": open_work.get(name, (0, 0))[0],
            "assigned_breached": open_work.get(name, (0, 0))[1],
            "minutes_logged": logged[name].minutes if name in logged else 0,
        }
        for name in names
    }


def _open_work(session: Session, counts: Counts, now: datetime) -> dict[str, tuple[int, int]]:
    """Per assignee: tickets neither closed (merged ones are) nor solved, and how many of
    them are past their deadline. The first from the counts; the second as all of them
    but those still in time, read from ``ix_tickets_open_due`` (due later, or never)."""
    open_statuses = {s.value for s in Status} - {Status.CLOSED.value, Status.SOLVED.value}
    assigned: dict[str, int] = {}
    for status, _, _, who, count in counts:
        if who and status in open_statuses:
            assigned[who] = assigned.get(who, 0) + count
    due, assignee = col(Ticket.due_at), col(Ticket.assignee)
    still_open: Any = literal_column("tickets.status NOT IN ('closed', 'solved')")  # the index's
    in_time = sa.union_all(
        *(
            sa.select(assignee).where(still_open, when, assignee.is_not(None), assignee != "")
            for when in (due > now, due.is_(None))  # two ranges of ix_tickets_open_due
        )
    ).subquery()
    in_time_by = dict(
        session.execute(
            sa.select(in_time.c.assignee, func.count()).group_by(in_time.c.assignee)
        ).all()
    )
    return {name: (n, n - in_time_by.get(name, 0)) for name, n in assigned.items() if n}


def _first_responses(
    session: Session, period: list[ColumnElement[bool]], since: datetime | None
) -> dict[str, dict[str, Any]]:
    """Per first responder: count, mean and median of the wall-clock first response."""
    agent = col(Ticket.first_responder)
    where = [*period, _fw.is_not(None), agent.is_not(None), agent != ""]
    rows: list[tuple[Any, ...]]
    if _is_postgresql(session):
        # Grouped by sorting (percentile_cont cannot be hashed): on the bytes of the
        # address, far cheaper to compare than in the database's collation.
        by_bytes = agent.collate("C")
        rows = [tuple(row) for row in session.execute(
            sa.select(
                by_bytes, func.count(_fw), func.sum(_fw),
                func.percentile_cont(0.5).within_group(_fw),
            )
            .where(*where)
            .group_by(by_bytes)
        ).all()]  # fmt: skip
    else:
        # Counts and sums in agent order from ix_tickets_stats_responder, then each agent's
        # middle values: a short sort per agent (one window over all of them sorts far more).
        sums = session.execute(
            sa.select(agent, func.count(_fw), func.sum(_fw)).where(*where).group_by(agent)
        ).all()
        middles = sqlite_middles(
            session,
            "ix_tickets_stats_responder",
            since,
            [Middle(_NAMES["fw"], count, name) for name, count, _ in sums],
        )
        rows = [(*row, middle) for row, middle in zip(sums, middles, strict=True)]
    return {
        name: {
            "count": int(count),
            "mean": _rounded_minutes(float(total) / count),
            "median": _rounded_minutes(None if median is None else float(median)),
        }
        for name, count, total, median in rows
    }
