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
- counts, means and SLA verdicts of the durations, per priority, type and sector: the
  period's whole days from ``ticket_day_totals`` (``store/day_totals.py``, kept by
  triggers, verdicts judged by the configured targets), its first, partial day from the
  tickets (``ix_tickets_stats``), and the tickets running past their deadline from
  ``ix_tickets_running``; the durations are stored on the ticket when they happen
  (``store/durations.py``). Should the store's targets differ from the ones given, one
  pass over the period's tickets counts it all;
- the four medians: the range that holds each from the per-day ranges of
  ``duration_days``, then that range's values in order (``store/medians.py``);
- first responses per agent: one grouped pass (PostgreSQL, with ``percentile_cont``), or
  sums from ``ix_tickets_stats_responder`` and a short sort per agent (SQLite);
- reopen rate: the tickets whose latest status event to solved is in the period, and of
  those the ones whose latest from solved to open is too (kept on the ticket by
  triggers on ``audit_events``; ``ix_tickets_solved``);
- minutes logged: the time entries of the period (``ix_time_entries_at``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, literal_column
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from store.counts import replies_by_author, ticket_counts
from store.day_totals import figures as day_figures
from store.day_totals import limits_match, totals_from
from store.durations import business_backfill_pending
from store.enums import Priority, Status
from store.medians import Middle, period_medians, whole_days
from store.medians import middles as sqlite_middles
from store.models import DURATIONS, Ticket
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
    groups = _judged(policy, _period_figures(session, policy, now, since))
    summaries = {key: _summary(groups, key) for key in DURATIONS}
    wanted = {key: summary["count"] for key, summary in summaries.items() if summary["count"]}
    for key, median in period_medians(session, since, wanted).items():
        summaries[key]["median"] = _rounded_minutes(median)
    first_wall, first_business = summaries["fw"], summaries["fb"]
    done_wall, done_business = summaries["rw"], summaries["rb"]
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
    """Settings for this transaction only. The first responders' medians sort the period's
    first responses: in memory, not in temporary files (the default 4 MB holds about
    80,000 of them).
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


def _period_figures(
    session: Session, policy: SlaPolicy, now: datetime, since: datetime | None
) -> list[dict[str, Any]]:
    """The sums, counts and verdicts of the period per priority, type and sector: its
    whole days from ``ticket_day_totals`` and the tickets still running past their
    deadline (``ix_tickets_running``), its first, partial day from the tickets; all from
    the tickets when the kept verdicts were judged by other targets than ``policy``'s."""
    if not limits_match(session, policy):
        return _counted_groups(session, policy, now, _period(since))
    first_day, partial = whole_days(since)
    parts: list[dict[str, Any]] = []
    if partial is not None:
        begins, ends = partial
        parts += _counted_groups(
            session, policy, now, [*_period(begins), col(Ticket.created_at) < ends]
        )
    parts += totals_from(session, first_day)
    parts += _late(session, now, first_day)
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for part in parts:
        into = merged.setdefault(
            (part["priority"], part["type"], part["sector"]),
            {"priority": part["priority"], "type": part["type"], "sector": part["sector"]},
        )
        for key, value in part.items():
            if key not in ("priority", "type", "sector"):
                into[key] = into.get(key, 0) + (value or 0)
    return list(merged.values())


def _late(session: Session, now: datetime, first_day: date | None) -> list[dict[str, Any]]:
    """The period's tickets (from ``first_day``) whose running phase is past its deadline:
    not answered yet (first response), or answered and not solved (resolution)."""
    where: list[Any] = [
        literal_column("tickets.due_at IS NOT NULL AND tickets.merged_into IS NULL"),
        col(Ticket.due_at) <= now,
    ]
    if first_day is not None:
        where.append(col(Ticket.created_at) >= datetime.combine(first_day, time(), tzinfo=UTC))
    sla_first, sla_done = col(Ticket.sla_first_response_seconds), col(Ticket.sla_resolution_seconds)
    group = (col(Ticket.priority), col(Ticket.type), col(Ticket.sector))
    rows = session.execute(
        sa.select(
            *group,
            func.count().filter(sla_first.is_(None) & _fw.is_(None)),
            func.count().filter(sla_done.is_(None) & _fw.is_not(None)),
        )
        .where(*where)
        .group_by(*group)
    ).all()
    return [
        {"priority": p, "type": t, "sector": s, "first_late": first, "done_late": done}
        for p, t, s, first, done in rows
    ]


def _counted_groups(
    session: Session,
    policy: SlaPolicy,
    now: datetime,
    period: list[ColumnElement[bool]],
) -> list[dict[str, Any]]:
    """The figures of ``_period_figures`` counted over the tickets of ``period``."""
    sla_first = col(Ticket.sla_first_response_seconds)
    sla_done = col(Ticket.sla_resolution_seconds)
    past_due = col(Ticket.due_at) <= now
    figures = {
        **day_figures(policy),
        "first_late": func.count().filter(sla_first.is_(None) & _fw.is_(None) & past_due),
        "done_late": func.count().filter(sla_done.is_(None) & _fw.is_not(None) & past_due),
    }
    group = (col(Ticket.priority), col(Ticket.type), col(Ticket.sector))
    rows = session.execute(
        sa.select(*group, *figures.values()).where(*period).group_by(*group)
    ).all()
    return [
        {"priority": r[0], "type": r[1], "sector": r[2], **dict(zip(figures, r[3:], strict=True))}
        for r in rows
    ]


def _judged(policy: SlaPolicy, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``groups`` with the breached count of each phase: measured over the target (the
    measured count minus the met one, as every group has one target: it depends on
    priority and type only), or not measured and running past the deadline."""
    for g in groups:
        for phase, key in ((Phase.FIRST_RESPONSE, "first"), (Phase.RESOLUTION, "done")):
            measured, met = g.get(f"{key}_measured", 0), g.get(f"{key}_met", 0)
            over = measured - met if _has_target(policy, phase, g) else 0
            g[f"{key}_breached"] = over + g.get(f"{key}_late", 0)
            g[f"{key}_met"] = met
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
    count = sum(g.get(f"{key}_n", 0) for g in groups)
    if not count:
        return {"count": 0, "mean": None, "median": None}
    total = sum(g.get(f"{key}_sum") or 0.0 for g in groups)
    return {"count": count, "mean": _rounded_minutes(total / count), "median": None}


def _rounded_minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


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
    """Of the tickets solved in the period, how many a merchant (or agent) opened again
    in it: a ticket had a status event to solved in the period when its latest one is in
    it, and the same for its events from solved to open (both kept on the ticket by the
    triggers of revision 0005); one range of ``ix_tickets_solved``."""
    solved_at, reopened_at = col(Ticket.last_solved_at), col(Ticket.last_reopened_at)
    where: list[Any] = [literal_column("tickets.last_solved_at IS NOT NULL")]  # the index's
    reopened: ColumnElement[bool] = reopened_at.is_not(None)
    if since is not None:
        where.append(solved_at >= since)
        reopened = reopened_at >= since
    solved, again = session.execute(
        sa.select(func.count(), func.count().filter(reopened)).where(*where)
    ).one()
    rate = round(again / solved, 3) if solved else None
    return {"solved": solved, "reopened": again, "rate": rate}


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
            [Middle(DURATIONS["fw"], count, name) for name, count, _ in sums],
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
