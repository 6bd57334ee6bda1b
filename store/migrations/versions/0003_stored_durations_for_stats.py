"""stored durations for stats: first response and resolution times on the ticket, the
first responder, and the indexes ``mailgate stats`` reads a reporting period from

New nullable columns on ``tickets`` (kept from now on by ``store/durations.py`` when a
ticket is answered, solved or reopened): ``first_response_wall_seconds``,
``first_response_business_seconds``, ``first_responder``, ``resolution_wall_seconds``,
``resolution_business_seconds``. Indexes: ``ix_tickets_stats`` (every column the figures
read, over tickets not merged away; hand-made, as its columns differ per database: on
PostgreSQL created_at with the rest included, on SQLite priority, type, sector, then
created_at, walked with a skip-scan, for which the revision runs ANALYZE), on SQLite
``ix_tickets_stats_responder`` (first responses per agent), ``ix_tickets_backlog_assignee``
(each agent's open and overdue tickets), ``ix_time_entries_at``, ``ix_messages_replies``
(direction, created_at, author) and ``ix_audit_events_status`` (action, new, at, old,
ticket_id).

Backfill of the tickets already in the store, as the old ``stats`` computed them:

- wall-clock seconds in SQL: ``first_response_at - created_at`` and, for tickets solved
  or closed, ``solved_at - created_at`` (never below 0);
- ``first_responder``: the author of the ticket's first outbound message that has one;
- business seconds need the business calendar of the configuration (working days and
  hours, time zone, holidays), which a migration cannot know. They are left NULL here
  and the meta value ``stats_business_backfill = pending`` is set; ``mailgate db
  upgrade`` then computes them in Python with the configured calendar, in committed
  batches (it can be interrupted and run again), and removes the mark. Until then
  ``mailgate stats`` gives business times over the tickets that have them and says the
  backfill is pending. Values are computed with the calendar configured at the time
  (as the old ``stats`` did at every run); changing the calendar later does not rewrite
  them.

Downgrade drops the columns and indexes (the values can be backfilled again).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NOT_MERGED = "merged_into IS NULL"
BACKLOG = sa.text("status <> 'closed'")
# What stats reads of a ticket in the reporting period.
STATS_COLUMNS = (
    "priority, type, sector, first_response_wall_seconds, first_response_business_seconds,"
    " resolution_wall_seconds, resolution_business_seconds, sla_first_response_seconds,"
    " sla_resolution_seconds, due_at"
)
STATS_INDEXES = {
    # PostgreSQL (no skip-scan before version 18): the period is one range of created_at.
    "postgresql": [
        f"CREATE INDEX ix_tickets_stats ON tickets (created_at)"
        f" INCLUDE ({STATS_COLUMNS}, first_responder) WHERE {NOT_MERGED}"
    ],
    # SQLite: grouped first, the period of each (priority, type, sector) walked with a
    # skip-scan and grouped without a sort; merged_into in the index so no row is read.
    # First responses per agent from their own index, in agent order.
    "sqlite": [
        f"CREATE INDEX ix_tickets_stats ON tickets (priority, type, sector, created_at,"
        f" {STATS_COLUMNS.removeprefix('priority, type, sector, ')}, merged_into)"
        f" WHERE {NOT_MERGED}",
        "CREATE INDEX ix_tickets_stats_responder ON tickets (first_responder, created_at,"
        f" first_response_wall_seconds, merged_into) WHERE {NOT_MERGED}",
    ],
}
FIRST_RESPONDER = (
    "(SELECT m.author FROM messages m WHERE m.ticket_id = tickets.id"
    " AND m.direction = 'out' AND m.author IS NOT NULL AND m.author <> ''"
    " ORDER BY m.id LIMIT 1)"
)


def _seconds(dialect: str, start: str, end: str) -> str:
    if dialect == "postgresql":
        return f"GREATEST(0, EXTRACT(EPOCH FROM ({end} - {start})))"
    return f"MAX(0, (julianday({end}) - julianday({start})) * 86400.0)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("tickets", sa.Column("first_response_wall_seconds", sa.Float(), nullable=True))
    op.add_column(
        "tickets", sa.Column("first_response_business_seconds", sa.Float(), nullable=True)
    )
    op.add_column("tickets", sa.Column("first_responder", sa.String(length=320), nullable=True))
    op.add_column("tickets", sa.Column("resolution_wall_seconds", sa.Float(), nullable=True))
    op.add_column("tickets", sa.Column("resolution_business_seconds", sa.Float(), nullable=True))

    # One statement, so each ticket row is rewritten once (PostgreSQL: one new version).
    walls = (
        "first_response_wall_seconds = CASE WHEN tickets.first_response_at IS NOT NULL"
        f" THEN {_seconds(dialect, 'tickets.created_at', 'tickets.first_response_at')} END,"
        " resolution_wall_seconds = CASE WHEN tickets.solved_at IS NOT NULL"
        " AND tickets.status IN ('solved', 'closed')"
        f" THEN {_seconds(dialect, 'tickets.created_at', 'tickets.solved_at')} END"
    )
    if dialect == "postgresql":
        # The first responders in one sorted pass over the messages, joined by hash
        # (a subquery per ticket takes minutes at a million tickets).
        op.execute(
            f"UPDATE tickets SET {walls}, first_responder = first.author"
            " FROM tickets AS every LEFT JOIN (SELECT DISTINCT ON (ticket_id) ticket_id, author"
            " FROM messages WHERE direction = 'out' AND author IS NOT NULL AND author <> ''"
            " ORDER BY ticket_id, id) AS first ON first.ticket_id = every.id"
            " WHERE tickets.id = every.id"
        )
    else:
        op.execute(f"UPDATE tickets SET {walls}, first_responder = {FIRST_RESPONDER}")
    op.execute(
        "INSERT INTO meta (key, value) SELECT 'stats_business_backfill', 'pending'"
        " WHERE EXISTS (SELECT 1 FROM tickets WHERE first_response_wall_seconds IS NOT NULL"
        " OR resolution_wall_seconds IS NOT NULL)"
    )

    for statement in STATS_INDEXES[dialect]:
        op.execute(statement)
    op.create_index(
        "ix_tickets_backlog_assignee",
        "tickets",
        ["assignee", "status", "due_at"],
        unique=False,
        postgresql_where=BACKLOG,
        sqlite_where=BACKLOG,
    )
    op.create_index("ix_time_entries_at", "time_entries", ["at"], unique=False)
    op.create_index(
        "ix_messages_replies", "messages", ["direction", "created_at", "author"], unique=False
    )
    op.create_index(
        "ix_audit_events_status",
        "audit_events",
        ["action", "new", "at", "old", "ticket_id"],
        unique=False,
    )
    if dialect == "sqlite":
        # Statistics for the planner: with them SQLite walks ix_tickets_stats group by
        # group (skip-scan) instead of sorting the period (PostgreSQL's autovacuum keeps
        # its own).
        op.execute("ANALYZE tickets")


def downgrade() -> None:
    op.drop_index("ix_audit_events_status", table_name="audit_events")
    op.drop_index("ix_messages_replies", table_name="messages")
    op.drop_index("ix_time_entries_at", table_name="time_entries")
    op.drop_index("ix_tickets_backlog_assignee", table_name="tickets")
    op.execute("DROP INDEX IF EXISTS ix_tickets_stats_responder")
    op.execute("DROP INDEX ix_tickets_stats")
    op.execute("DELETE FROM meta WHERE key = 'stats_business_backfill'")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch copy of the table would
    # drop the search triggers of revision 0002.
    for column in (
        "resolution_business_seconds",
        "resolution_wall_seconds",
        "first_responder",
        "first_response_business_seconds",
        "first_response_wall_seconds",
    ):
        op.drop_column("tickets", column)
