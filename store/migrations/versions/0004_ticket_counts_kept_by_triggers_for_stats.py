"""ticket counts kept by triggers for stats: ``ticket_counts`` and the triggers on
``tickets`` that keep it, so ``mailgate stats`` reads the whole-store counts (tickets by
status, the backlog by sector and priority) without counting a million rows

``ticket_counts`` holds rows of (status, sector, priority, tickets) whose sums per group
equal ``SELECT status, sector, priority, COUNT(*) FROM tickets GROUP BY 1, 2, 3``. Triggers
add a row in the transaction that changes a ticket: +1 for a new ticket, -1 for a deleted
one, and -1 (old values) and +1 (new values) when its status, sector or priority changes,
whichever code path or SQL statement does it. Rows are only ever inserted, never
updated, so concurrent gateways on PostgreSQL do not queue on a counter row (every new
ticket starts as (new, default sector, normal): one row per group would be locked by each
ingest transaction until it commits). ``store/counts.py`` sums them and, from the
scheduler, folds them into one row per group.

Backfill: one row per group with ``COUNT(*)`` of the tickets already in the store.

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

COLUMNS = "status, sector, priority, tickets"
CHANGED = (
    "OLD.status IS DISTINCT FROM NEW.status OR OLD.sector IS DISTINCT FROM NEW.sector"
    " OR OLD.priority IS DISTINCT FROM NEW.priority"
)
POSTGRESQL = [
    f"""CREATE FUNCTION ticket_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO ticket_counts ({COLUMNS})
            VALUES (OLD.status, OLD.sector, OLD.priority, -1);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO ticket_counts ({COLUMNS})
            VALUES (NEW.status, NEW.sector, NEW.priority, 1);
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER ticket_counts_insert_delete AFTER INSERT OR DELETE ON tickets"
    " FOR EACH ROW EXECUTE FUNCTION ticket_counts_track()",
    "CREATE TRIGGER ticket_counts_update AFTER UPDATE OF status, sector, priority ON tickets"
    f" FOR EACH ROW WHEN ({CHANGED}) EXECUTE FUNCTION ticket_counts_track()",
]
SQLITE = [
    "CREATE TRIGGER ticket_counts_insert AFTER INSERT ON tickets BEGIN"
    f" INSERT INTO ticket_counts ({COLUMNS}) VALUES (NEW.status, NEW.sector, NEW.priority, 1);"
    " END",
    "CREATE TRIGGER ticket_counts_delete AFTER DELETE ON tickets BEGIN"
    f" INSERT INTO ticket_counts ({COLUMNS}) VALUES (OLD.status, OLD.sector, OLD.priority, -1);"
    " END",
    "CREATE TRIGGER ticket_counts_update AFTER UPDATE OF status, sector, priority ON tickets"
    f" WHEN {CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN"
    f" INSERT INTO ticket_counts ({COLUMNS}) VALUES (OLD.status, OLD.sector, OLD.priority, -1),"
    " (NEW.status, NEW.sector, NEW.priority, 1);"
    " END",
]
TRIGGERS = {
    "postgresql": ["ticket_counts_insert_delete", "ticket_counts_update"],
    "sqlite": ["ticket_counts_insert", "ticket_counts_delete", "ticket_counts_update"],
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "ticket_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sector", sa.String(length=40), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    if dialect == "postgresql":
        # No writer may change a ticket between the count and the triggers.
        op.execute("LOCK TABLE tickets IN SHARE ROW EXCLUSIVE MODE")
    for statement in POSTGRESQL if dialect == "postgresql" else SQLITE:
        op.execute(statement)
    op.execute(
        f"INSERT INTO ticket_counts ({COLUMNS})"
        " SELECT status, sector, priority, COUNT(*) FROM tickets GROUP BY status, sector, priority"
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for trigger in TRIGGERS[dialect]:
        op.execute(f"DROP TRIGGER {trigger}" + (" ON tickets" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION ticket_counts_track()")
    op.drop_table("ticket_counts")
