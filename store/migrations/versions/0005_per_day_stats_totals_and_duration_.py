"""per-day stats totals and duration histograms kept by triggers, so ``mailgate stats``
reads a reporting period's counts, sums, SLA verdicts and the ranges of its medians from a
few thousand rows instead of every ticket of the period

``ticket_day_totals`` holds rows of (UTC day of creation, priority, type, sector) with
the number of tickets, the count and sum of each stored duration, and per SLA phase how
many tickets have it measured and how many of those met the target; their sums per group
equal those aggregates over the tickets not merged away. "Met" is judged against
``sla_limits`` (the configured targets, written by ``store/day_totals.py`` when they
change, which then recounts the verdicts).

``duration_days`` holds rows of (measure, day, low, n): how many durations of one kind
(fw, fb: first response wall-clock and business; rw, rb: resolution) of the tickets created
that day lie in the range of ``duration_buckets`` that starts at ``low`` (a value belongs
to the greatest bound not above it; the bounds grow by 5 % from a minute on). ``stats``
finds the range holding a median from them and reads only that range's values
(``ix_tickets_<measure>_value``).

As in revision 0004, triggers on ``tickets`` add rows in the transaction that changes a
ticket (+ for the new values, - for the old ones, when a column they depend on changes),
whichever code path or SQL statement does it; rows are only inserted, and the scheduler
folds them into one per group. ``ix_tickets_running`` covers the tickets with a running
deadline, for the verdicts that depend on the time ``stats`` is run ("still running, past
due"). ``ix_tickets_backlog_counts`` is dropped: nothing has read it since revision 0004.

``tickets.last_solved_at`` and ``last_reopened_at``: the latest status event of the ticket
to solved, and from solved to open, kept by triggers on ``audit_events`` (backfilled from
them), so the reopen rate of a period is a range of ``ix_tickets_solved``.

Backfill: the histograms and the totals of the tickets already in the store; the totals'
verdicts are counted once the limits are written (``store.day_totals.sync_limits``, by
``mailgate db upgrade`` and ``serve``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MEASURES = {
    "fw": "first_response_wall_seconds",
    "fb": "first_response_business_seconds",
    "rw": "resolution_wall_seconds",
    "rb": "resolution_business_seconds",
}
DEPENDS_ON = [
    "created_at",
    "merged_into",
    "priority",
    "type",
    "sector",
    *MEASURES.values(),
    "sla_first_response_seconds",
    "sla_resolution_seconds",
]
TOTALS = (
    "day, priority, type, sector, tickets, fw_n, fw_sum, fb_n, fb_sum, rw_n, rw_sum,"
    " rb_n, rb_sum, first_measured, first_met, done_measured, done_met"
)


LOWEST = -1e15  # the first range's bound: a value never falls outside the ranges


def bucket_bounds() -> list[float]:
    """Everything under one second, each second up to a minute, then 5 % wider each
    range (whole seconds) up to ten years: about 380 ranges."""
    bounds = [LOWEST, *range(60)]
    low = 60.0
    while low < 3.2e8:
        bounds.append(round(low))
        low = max(low * 1.05, bounds[-1] + 1)
    return [float(b) for b in bounds]


def _day(row: str, dialect: str) -> str:
    return f"date({row}.created_at)" if dialect == "sqlite" else f"{row}.created_at::date"


def _met(row: str, phase: str, column: str) -> str:
    below = (
        f"(SELECT below FROM sla_limits WHERE phase = '{phase}' AND priority = {row}.priority"
        f" AND type IN ({row}.type, '') ORDER BY type DESC LIMIT 1)"
    )
    return f"CASE WHEN {row}.{column} < {below} THEN 1 ELSE 0 END"


def _totals_row(row: str, sign: int, dialect: str) -> str:
    """The INSERT of one ticket's (``row``: NEW or OLD) share, times ``sign``."""

    def counted(column: str) -> str:
        return f"{sign} * (CASE WHEN {row}.{column} IS NULL THEN 0 ELSE 1 END)"

    figures = [f"{sign}"]
    for column in MEASURES.values():
        figures += [counted(column), f"{sign} * COALESCE({row}.{column}, 0)"]
    figures += [
        counted("sla_first_response_seconds"),
        f"{sign} * {_met(row, 'first_response', 'sla_first_response_seconds')}",
        counted("sla_resolution_seconds"),
        f"{sign} * {_met(row, 'resolution', 'sla_resolution_seconds')}",
    ]
    return (
        f"INSERT INTO ticket_day_totals ({TOTALS}) SELECT {_day(row, dialect)},"
        f" {row}.priority, {row}.type, {row}.sector, {', '.join(figures)}"
        f" WHERE {row}.merged_into IS NULL"
    )


def _histogram_side(row: str, sign: int, dialect: str) -> str:
    values = " UNION ALL ".join(
        f"SELECT '{m}' AS measure, {row}.{c} AS value" for m, c in MEASURES.items()
    )
    return (
        f"SELECT {_day(row, dialect)} AS day, v.measure AS measure,"
        f" COALESCE((SELECT max(low) FROM duration_buckets WHERE low <= v.value), {LOWEST})"
        " AS low,"
        f" {sign} AS n FROM ({values}) AS v"
        f" WHERE {row}.merged_into IS NULL AND v.value IS NOT NULL"
    )


def _histogram(rows: list[tuple[str, int]], dialect: str) -> str:
    """The INSERT of the changed ranges: the old values' (-1) and the new ones' (+1),
    where a value that stays in its range on the same day cancels out."""
    sides = " UNION ALL ".join(_histogram_side(row, sign, dialect) for row, sign in rows)
    return (
        "INSERT INTO duration_days (measure, day, low, n)"
        f" SELECT measure, day, low, SUM(n) FROM ({sides}) AS c"
        " GROUP BY measure, day, low HAVING SUM(n) <> 0"
    )


def _changed(dialect: str) -> str:
    distinct = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in DEPENDS_ON)


def triggers(dialect: str) -> list[str]:
    new, old = [("NEW", 1)], [("OLD", -1)]
    if dialect == "postgresql":
        return [
            f"""CREATE FUNCTION ticket_day_totals_track() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    {_totals_row("NEW", 1, dialect)};
                    {_histogram(new, dialect)};
                ELSIF TG_OP = 'DELETE' THEN
                    {_totals_row("OLD", -1, dialect)};
                    {_histogram(old, dialect)};
                ELSE
                    {_totals_row("OLD", -1, dialect)};
                    {_totals_row("NEW", 1, dialect)};
                    {_histogram(old + new, dialect)};
                END IF;
                RETURN NULL;
            END $$""",
            "CREATE TRIGGER ticket_day_totals_insert_delete AFTER INSERT OR DELETE ON tickets"
            " FOR EACH ROW EXECUTE FUNCTION ticket_day_totals_track()",
            f"CREATE TRIGGER ticket_day_totals_update AFTER UPDATE OF {', '.join(DEPENDS_ON)}"
            f" ON tickets FOR EACH ROW WHEN ({_changed(dialect)})"
            " EXECUTE FUNCTION ticket_day_totals_track()",
        ]
    return [
        "CREATE TRIGGER ticket_day_totals_insert AFTER INSERT ON tickets BEGIN"
        f" {_totals_row('NEW', 1, dialect)}; {_histogram(new, dialect)}; END",
        "CREATE TRIGGER ticket_day_totals_delete AFTER DELETE ON tickets BEGIN"
        f" {_totals_row('OLD', -1, dialect)}; {_histogram(old, dialect)}; END",
        f"CREATE TRIGGER ticket_day_totals_update AFTER UPDATE OF {', '.join(DEPENDS_ON)}"
        f" ON tickets WHEN {_changed(dialect)} BEGIN"
        f" {_totals_row('OLD', -1, dialect)}; {_totals_row('NEW', 1, dialect)};"
        f" {_histogram(old + new, dialect)}; END",
    ]


# The reopen rate: per ticket the latest status event to solved and from solved to open,
# kept on the ticket by triggers on audit_events. A new event moves them forward; a
# deleted or changed one makes them be read again from the ticket's events.
SOLVE = "{row}.new = 'solved'"
REOPEN = "{row}.old = 'solved' AND {row}.new = 'open'"
STATUS_EVENT = (
    "{row}.action = 'status' AND {row}.ticket_id IS NOT NULL"
    " AND ({row}.new = 'solved' OR ({row}.old = 'solved' AND {row}.new = 'open'))"
)


def _latest(kind: str, ticket: str) -> str:
    condition = SOLVE if kind == "solve" else REOPEN
    return (
        f"(SELECT max(e.at) FROM audit_events e WHERE e.ticket_id = {ticket}"
        f" AND e.action = 'status' AND {condition.format(row='e')})"
    )


def _moved_forward(column: str, kind: str) -> str:
    condition = SOLVE if kind == "solve" else REOPEN
    return (
        f"CASE WHEN {condition.format(row='NEW')} AND ({column} IS NULL OR {column} < NEW.at)"
        f" THEN NEW.at ELSE {column} END"
    )


FORWARD = (
    "UPDATE tickets SET last_solved_at = " + _moved_forward("last_solved_at", "solve") + ","
    " last_reopened_at = "
    + _moved_forward("last_reopened_at", "reopen")
    + " WHERE id = NEW.ticket_id"
)


def _reread(ticket: str) -> str:
    return (
        f"UPDATE tickets SET last_solved_at = {_latest('solve', ticket)},"
        f" last_reopened_at = {_latest('reopen', ticket)} WHERE id = {ticket}"
    )


def solve_triggers(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [
            f"""CREATE FUNCTION tickets_solve_times_track() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    IF {STATUS_EVENT.format(row="NEW")} THEN
                        {FORWARD};
                    END IF;
                    RETURN NULL;
                END IF;
                IF {STATUS_EVENT.format(row="OLD")} THEN
                    {_reread("OLD.ticket_id")};
                END IF;
                IF TG_OP = 'UPDATE' AND {STATUS_EVENT.format(row="NEW")} THEN
                    {_reread("NEW.ticket_id")};
                END IF;
                RETURN NULL;
            END $$""",
            "CREATE TRIGGER tickets_solve_times AFTER INSERT OR DELETE OR UPDATE OF"
            " ticket_id, at, action, old, new ON audit_events"
            " FOR EACH ROW EXECUTE FUNCTION tickets_solve_times_track()",
        ]
    return [
        "CREATE TRIGGER tickets_solve_times_insert AFTER INSERT ON audit_events"
        f" WHEN {STATUS_EVENT.format(row='NEW')} BEGIN {FORWARD}; END",
        "CREATE TRIGGER tickets_solve_times_delete AFTER DELETE ON audit_events"
        f" WHEN {STATUS_EVENT.format(row='OLD')} BEGIN {_reread('OLD.ticket_id')}; END",
        "CREATE TRIGGER tickets_solve_times_update AFTER UPDATE OF ticket_id, at, action, old,"
        f" new ON audit_events WHEN {STATUS_EVENT.format(row='OLD')}"
        f" OR {STATUS_EVENT.format(row='NEW')} BEGIN {_reread('OLD.ticket_id')};"
        f" {_reread('NEW.ticket_id')}; END",
    ]


SOLVE_TRIGGERS = {
    "postgresql": [("tickets_solve_times", "audit_events")],
    "sqlite": [
        ("tickets_solve_times_insert", "audit_events"),
        ("tickets_solve_times_delete", "audit_events"),
        ("tickets_solve_times_update", "audit_events"),
    ],
}


TRIGGERS = {
    "postgresql": ["ticket_day_totals_insert_delete", "ticket_day_totals_update"],
    "sqlite": ["ticket_day_totals_insert", "ticket_day_totals_delete", "ticket_day_totals_update"],
}
RUNNING = (
    "created_at, due_at, priority, type, sector, sla_first_response_seconds,"
    " first_response_wall_seconds, sla_resolution_seconds"
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "duration_buckets",
        sa.Column("low", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("low"),
    )
    op.create_table(
        "duration_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("measure", sa.String(length=2), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_duration_days_read", "duration_days", ["measure", "day", "low", "n"])
    op.create_table(
        "sla_limits",
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("below", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("phase", "priority", "type"),
    )
    op.create_table(
        "ticket_day_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("sector", sa.String(length=40), nullable=False),
        *(
            sa.Column(name, sa.Float() if name.endswith("_sum") else sa.Integer(), nullable=False)
            for name in TOTALS.split(", ")[4:]
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ticket_day_totals_day", "ticket_day_totals", ["day"])
    buckets = sa.table("duration_buckets", sa.column("low", sa.Float()))
    op.bulk_insert(buckets, [{"low": low} for low in bucket_bounds()])
    for statement in triggers(dialect):
        op.execute(statement)
    for measure, column in MEASURES.items():
        op.create_index(
            f"ix_tickets_{measure}_value",
            "tickets",
            [column, "created_at"],
            postgresql_where=sa.text(f"merged_into IS NULL AND {column} IS NOT NULL"),
            sqlite_where=sa.text(f"merged_into IS NULL AND {column} IS NOT NULL"),
        )
    running = sa.text("due_at IS NOT NULL AND merged_into IS NULL")
    op.create_index(
        "ix_tickets_running",
        "tickets",
        RUNNING.split(", "),
        postgresql_where=running,
        sqlite_where=running,
    )
    _backfill(dialect)
    _solve_times(dialect)
    # The backlog by sector, priority and status has been read from ticket_counts since
    # revision 0004: this index only cost every ticket write.
    op.drop_index("ix_tickets_backlog_counts", table_name="tickets")


def _solve_times(dialect: str) -> None:
    op.add_column("tickets", sa.Column("last_solved_at", sa.DateTime(), nullable=True))
    op.add_column("tickets", sa.Column("last_reopened_at", sa.DateTime(), nullable=True))
    solved = sa.text("last_solved_at IS NOT NULL")
    op.create_index(
        "ix_tickets_solved",
        "tickets",
        ["last_solved_at", "last_reopened_at"],
        postgresql_where=solved,
        sqlite_where=solved,
    )
    for statement in solve_triggers(dialect):
        op.execute(statement)
    op.execute(
        "UPDATE tickets SET last_solved_at = e.solved, last_reopened_at = e.reopened FROM"
        f" (SELECT ticket_id, max(CASE WHEN {SOLVE.format(row='audit_events')} THEN at END)"
        f" AS solved, max(CASE WHEN {REOPEN.format(row='audit_events')} THEN at END)"
        f" AS reopened FROM audit_events WHERE {STATUS_EVENT.format(row='audit_events')}"
        " GROUP BY ticket_id) AS e WHERE tickets.id = e.ticket_id"
    )


def _backfill(dialect: str) -> None:
    day = "date(created_at)" if dialect == "sqlite" else "created_at::date"
    sums = ", ".join(f"COUNT({c}), COALESCE(SUM({c}), 0)" for c in MEASURES.values())
    op.execute(
        f"INSERT INTO ticket_day_totals ({TOTALS}) SELECT {day}, priority, type, sector,"
        f" COUNT(*), {sums}, COUNT(sla_first_response_seconds), 0,"
        " COUNT(sla_resolution_seconds), 0 FROM tickets WHERE merged_into IS NULL"
        f" GROUP BY {day}, priority, type, sector"
    )
    for measure, column in MEASURES.items():
        op.execute(
            f"INSERT INTO duration_days (measure, day, low, n) SELECT '{measure}', d, low,"
            f" COUNT(*) FROM (SELECT {day} AS d, (SELECT max(low) FROM duration_buckets"
            f" WHERE low <= {column}) AS low FROM tickets"
            f" WHERE merged_into IS NULL AND {column} IS NOT NULL) AS v GROUP BY d, low"
        )
    # One row per group already: the scheduler's folds start after them (store/counts.py).
    for table in ("ticket_day_totals", "duration_days"):
        op.execute(
            f"INSERT INTO meta (key, value) SELECT 'folded:{table}',"
            f" CAST(COALESCE(MAX(id), 0) AS VARCHAR(20)) FROM {table}"
        )
    if dialect == "sqlite":
        op.execute("ANALYZE tickets")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    backlog = sa.text("status <> 'closed'")
    op.create_index(
        "ix_tickets_backlog_counts",
        "tickets",
        ["sector", "priority", "status"],
        postgresql_where=backlog,
        sqlite_where=backlog,
    )
    for trigger in TRIGGERS[dialect]:
        op.execute(f"DROP TRIGGER {trigger}" + (" ON tickets" if dialect == "postgresql" else ""))
    for trigger, table in SOLVE_TRIGGERS[dialect]:
        op.execute(f"DROP TRIGGER {trigger}" + (f" ON {table}" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION ticket_day_totals_track()")
        op.execute("DROP FUNCTION tickets_solve_times_track()")
    op.drop_index("ix_tickets_solved", table_name="tickets")
    # Plain ALTER TABLE ... DROP COLUMN: a batch copy of the table would drop its triggers.
    op.execute("ALTER TABLE tickets DROP COLUMN last_reopened_at")
    op.execute("ALTER TABLE tickets DROP COLUMN last_solved_at")
    op.drop_index("ix_tickets_running", table_name="tickets")
    for measure in MEASURES:
        op.drop_index(f"ix_tickets_{measure}_value", table_name="tickets")
    op.execute("DELETE FROM meta WHERE key LIKE 'folded:%'")
    op.drop_table("ticket_day_totals")
    op.drop_table("sla_limits")
    op.drop_table("duration_days")
    op.drop_table("duration_buckets")
