"""cheaper triggers for a new ticket on PostgreSQL: its search document from its subject
alone, and no duration ranges while it has no duration

Every mail that opens a ticket ran two triggers that did more than a new ticket needs:

- ``mailgate_search_ticket_changed`` built the new ticket's document with
  ``mailgate_search_document``: the subject's words, then every message's, read back from
  ``tickets`` and ``messages``. A ticket being inserted has no messages yet (each one
  refers to its ticket, so it comes after), and that second part is always empty: the
  document is the subject's ``to_tsvector`` alone, the same value without the two reads.
  Changes of a ticket still rebuild the whole document, as before.
- ``ticket_day_totals_track`` added the new ticket's duration ranges, but a ticket is
  opened with none of its four durations measured, and that insert found nothing to add.
  It now runs only when one of them is set.

On the mails of ``bench.ingest stages`` (PostgreSQL) the two took 0.89 ms of the server's
time per new ticket before and 0.35 after (bench/README.md). SQLite keeps its triggers:
its search trigger already indexes only the subject, and the same change to its totals
trigger made no difference that could be measured there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Revision 0005 wrote the totals trigger; its SQL builders are reused, as they were then.
_0005 = importlib.import_module(
    "store.migrations.versions.0005_per_day_stats_totals_and_duration_"
)


def _search_function(insert: str) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION mailgate_search_ticket_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO ticket_search (ticket_id, document) VALUES (NEW.id, {insert});
            ELSE
                UPDATE ticket_search SET document = mailgate_search_document(NEW.id)
                WHERE ticket_id = NEW.id;
            END IF;
            RETURN NULL;
        END
        $$
    """


def _totals_function() -> str:
    new, old = [("NEW", 1)], [("OLD", -1)]
    dialect = "postgresql"
    measured = " OR ".join(f"NEW.{column} IS NOT NULL" for column in _0005.MEASURES.values())
    return f"""CREATE OR REPLACE FUNCTION ticket_day_totals_track() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {_0005._totals_row("NEW", 1, dialect)};
                IF {measured} THEN
                    {_0005._histogram(new, dialect)};
                END IF;
            ELSIF TG_OP = 'DELETE' THEN
                {_0005._totals_row("OLD", -1, dialect)};
                {_0005._histogram(old, dialect)};
            ELSE
                {_0005._totals_row("OLD", -1, dialect)};
                {_0005._totals_row("NEW", 1, dialect)};
                {_0005._histogram(old + new, dialect)};
            END IF;
            RETURN NULL;
        END $$"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_search_function("to_tsvector(mailgate_search_config(NEW.language), NEW.subject)"))
    op.execute(_totals_function())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_search_function("mailgate_search_document(NEW.id)"))
    totals = _0005.triggers("postgresql")[0]
    op.execute(totals.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
