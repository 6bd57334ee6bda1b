"""ticket counts kept by triggers for stats: ``ticket_counts`` and ``reply_counts``, and
the triggers on ``tickets`` and ``messages`` that keep them, so ``mailgate stats`` reads the
whole-store counts (tickets by status, the backlog by sector and priority) and the replies
per agent without counting a million rows

``ticket_counts`` holds rows of (status, sector, priority, tickets) whose sums per group
equal ``SELECT status, sector, priority, COUNT(*) FROM tickets GROUP BY 1, 2, 3``. Triggers
add a row in the transaction that changes a ticket: +1 for a new ticket, -1 for a deleted
one, and -1 (old values) and +1 (new values) when its status, sector or priority changes,
whichever code path or SQL statement does it. Rows are only ever inserted, never
updated, so concurrent gateways on PostgreSQL do not queue on a counter row (every new
ticket starts as (new, default sector, normal): one row per group would be locked by each
ingest transaction until it commits). ``store/counts.py`` sums them and, from the
scheduler, folds them into one row per group.

``reply_counts`` the same for replies: rows of (day, author, replies) whose sums equal
the outbound messages with an author per UTC day of ``created_at`` and author; a trigger
adds +1 for such a message, -1 when one is deleted, -1/+1 when its direction, author or
time changes. ``stats`` sums the whole days of a period from it, and counts the messages
of the period's first, partial day from ``ix_messages_replies``.

Backfill: one row per group with ``COUNT(*)`` of the tickets (messages) already in the
store.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = "status, sector, priority, assignee, tickets"
CHANGED = (
    "OLD.status IS DISTINCT FROM NEW.status OR OLD.sector IS DISTINCT FROM NEW.sector"
    " OR OLD.priority IS DISTINCT FROM NEW.priority OR OLD.assignee IS DISTINCT FROM NEW.assignee"
)
OPEN = "status NOT IN ('closed', 'solved')"
POSTGRESQL = [
    f"""CREATE FUNCTION ticket_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO ticket_counts ({COLUMNS})
            VALUES (OLD.status, OLD.sector, OLD.priority, COALESCE(OLD.assignee, ''), -1);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO ticket_counts ({COLUMNS})
            VALUES (NEW.status, NEW.sector, NEW.priority, COALESCE(NEW.assignee, ''), 1);
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER ticket_counts_insert_delete AFTER INSERT OR DELETE ON tickets"
    " FOR EACH ROW EXECUTE FUNCTION ticket_counts_track()",
    "CREATE TRIGGER ticket_counts_update AFTER UPDATE OF status, sector, priority, assignee ON tickets"
    f" FOR EACH ROW WHEN ({CHANGED}) EXECUTE FUNCTION ticket_counts_track()",
]
SQLITE = [
    "CREATE TRIGGER ticket_counts_insert AFTER INSERT ON tickets BEGIN"
    f" INSERT INTO ticket_counts ({COLUMNS}) VALUES (NEW.status, NEW.sector, NEW.priority, COALESCE(NEW.assignee, ''), 1);"
    " END",
    "CREATE TRIGGER ticket_counts_delete AFTER DELETE ON tickets BEGIN"
    f" INSERT INTO ticket_counts ({COLUMNS}) VALUES (OLD.status, OLD.sector, OLD.priority, COALESCE(OLD.assignee, ''), -1);"
    " END",
    "CREATE TRIGGER ticket_counts_update AFTER UPDATE OF status, sector, priority, assignee ON tickets"
    f" WHEN {CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN"
    f" INSERT INTO ticket_counts ({COLUMNS}) VALUES (OLD.status, OLD.sector, OLD.priority, COALESCE(OLD.assignee, ''), -1),"
    " (NEW.status, NEW.sector, NEW.priority, COALESCE(NEW.assignee, ''), 1);"
    " END",
]
REPLY = "{row}.direction = 'out' AND {row}.author IS NOT NULL AND {row}.author <> ''"
REPLY_CHANGED = (
    "OLD.direction IS DISTINCT FROM NEW.direction OR OLD.author IS DISTINCT FROM NEW.author"
    " OR OLD.created_at IS DISTINCT FROM NEW.created_at"
)
REPLY_POSTGRESQL = [
    f"""CREATE FUNCTION reply_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' AND {REPLY.format(row="OLD")} THEN
            INSERT INTO reply_counts (day, author, replies)
            VALUES (OLD.created_at::date, OLD.author, -1);
        END IF;
        IF TG_OP <> 'DELETE' AND {REPLY.format(row="NEW")} THEN
            INSERT INTO reply_counts (day, author, replies)
            VALUES (NEW.created_at::date, NEW.author, 1);
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER reply_counts_insert_delete AFTER INSERT OR DELETE ON messages"
    " FOR EACH ROW EXECUTE FUNCTION reply_counts_track()",
    "CREATE TRIGGER reply_counts_update AFTER UPDATE OF direction, author, created_at"
    f" ON messages FOR EACH ROW WHEN ({REPLY_CHANGED}) EXECUTE FUNCTION reply_counts_track()",
]
REPLY_SQLITE = [
    f"CREATE TRIGGER reply_counts_insert AFTER INSERT ON messages WHEN {REPLY.format(row='NEW')}"
    " BEGIN INSERT INTO reply_counts (day, author, replies)"
    " VALUES (date(NEW.created_at), NEW.author, 1); END",
    f"CREATE TRIGGER reply_counts_delete AFTER DELETE ON messages WHEN {REPLY.format(row='OLD')}"
    " BEGIN INSERT INTO reply_counts (day, author, replies)"
    " VALUES (date(OLD.created_at), OLD.author, -1); END",
    "CREATE TRIGGER reply_counts_update AFTER UPDATE OF direction, author, created_at"
    f" ON messages WHEN {REPLY_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN"
    " INSERT INTO reply_counts (day, author, replies)"
    f" SELECT date(OLD.created_at), OLD.author, -1 WHERE {REPLY.format(row='OLD')};"
    " INSERT INTO reply_counts (day, author, replies)"
    f" SELECT date(NEW.created_at), NEW.author, 1 WHERE {REPLY.format(row='NEW')};"
    " END",
]
DAY = {"postgresql": "created_at::date", "sqlite": "date(created_at)"}
TRIGGERS = {
    "postgresql": [
        ("ticket_counts_insert_delete", "tickets"),
        ("ticket_counts_update", "tickets"),
        ("reply_counts_insert_delete", "messages"),
        ("reply_counts_update", "messages"),
    ],
    "sqlite": [
        ("ticket_counts_insert", "tickets"),
        ("ticket_counts_delete", "tickets"),
        ("ticket_counts_update", "tickets"),
        ("reply_counts_insert", "messages"),
        ("reply_counts_delete", "messages"),
        ("reply_counts_update", "messages"),
    ],
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "ticket_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sector", sa.String(length=40), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("assignee", sa.String(length=320), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "reply_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    if dialect == "postgresql":
        # No writer may change a ticket or message between the count and the triggers.
        op.execute("LOCK TABLE tickets, messages IN SHARE ROW EXCLUSIVE MODE")
    if dialect == "postgresql":
        statements = POSTGRESQL + REPLY_POSTGRESQL
    else:
        statements = SQLITE + REPLY_SQLITE
    for statement in statements:
        op.execute(statement)
    op.execute(
        f"INSERT INTO ticket_counts ({COLUMNS}) SELECT status, sector, priority,"
        " COALESCE(assignee, ''), COUNT(*) FROM tickets"
        " GROUP BY status, sector, priority, COALESCE(assignee, '')"
    )
    # Each agent's open tickets are counted; those not past their deadline are read here.
    op.drop_index("ix_tickets_backlog_assignee", table_name="tickets")
    op.create_index(
        "ix_tickets_open_due",
        "tickets",
        ["due_at", "assignee"],
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )
    op.execute(
        f"INSERT INTO reply_counts (day, author, replies) SELECT {DAY[dialect]}, author, COUNT(*)"
        f" FROM messages WHERE {REPLY.format(row='messages')} GROUP BY {DAY[dialect]}, author"
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for trigger, table in TRIGGERS[dialect]:
        op.execute(f"DROP TRIGGER {trigger}" + (f" ON {table}" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION reply_counts_track()")
        op.execute("DROP FUNCTION ticket_counts_track()")
    op.drop_table("reply_counts")
    op.drop_table("ticket_counts")
    op.drop_index("ix_tickets_open_due", table_name="tickets")
    backlog = sa.text("status <> 'closed'")
    op.create_index(
        "ix_tickets_backlog_assignee",
        "tickets",
        ["assignee", "status", "due_at"],
        postgresql_where=backlog,
        sqlite_where=backlog,
    )
